"""`replate.client` against the real gateway and Triton: every endpoint, and retries that are never charged twice
(a 503 in front of the gateway, the gateway's own 429, an answer lost after the work was done)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from replate.client import (
    ApiError,
    AsyncClient,
    Client,
    ReplateStub,
    RetryPolicy,
    async_grpc_channel,
    grpc_channel,
    pb,
)
from replate.imageio import ImageLimits, decode_image
from tests.conftest import data_url
from tests.integration.conftest import GatewayThread
from tests.integration.faults import LoseFirstAnswer, LoseFirstAnswerAsync, RefuseFirst, journal

pytestmark = pytest.mark.slow
REPLACE = "/v1/image/replace-background"
FAST_RETRIES = RetryPolicy(max_retries=3, initial_delay_s=0.05)


def size_of(data: bytes) -> tuple[int, int]:
    rgb = decode_image(data, ImageLimits()).rgb
    return rgb.shape[1], rgb.shape[0]


@pytest.fixture
def live_settings(settings: Settings, triton: TritonServer) -> Settings:
    return settings.model_copy(update={"triton_url": triton.grpc_url})


@pytest.fixture
def photo(tmp_path: Path, studio_png: bytes) -> Path:
    path = tmp_path / "product.png"
    path.write_bytes(studio_png)
    return path


@pytest.fixture
def refusing_gateway(live_settings: Settings) -> Iterator[GatewayThread]:
    """The gateway behind a 503 (Retry-After: 1) on its first replace-background request."""
    app = RefuseFirst(create_app(live_settings), path=REPLACE, retry_after=1)
    with GatewayThread(live_settings, app=app) as running:
        yield running


async def test_the_client_covers_every_endpoint(gateway: GatewayThread, make_key, photo: Path, tmp_path: Path) -> None:
    key = await make_key(100)
    spent = 0
    with Client(gateway.url, key) as client:
        assert client.health() == {"status": "ok"}
        assert client.ready()["status"] == "ready"
        assert REPLACE in client.openapi()["paths"]

        replaced = client.replace_background(photo, bg_color="#f4efe6", num_outputs=2, seed=7)
        spent += replaced.credits_charged
        assert (replaced.width, replaced.height, replaced.seed, replaced.credits_charged) == (320, 240, 7, 10)
        assert replaced.engines["scene"] and replaced.remaining_credits == 100 - spent
        written = client.download(replaced.outputs[1], tmp_path / "second.png")
        assert written == (tmp_path / "second.png").stat().st_size and size_of(
            Path(tmp_path / "second.png").read_bytes()
        ) == (320, 240)

        inline = client.replace_background(
            photo.read_bytes(),
            scene_prompt="marble counter",
            scene_image=photo,
            harmonize=0.5,
            preserve_shadow=False,
            shadow="contact",
            return_base64=True,
        )
        spent += inline.credits_charged
        assert inline.outputs[0].startswith("data:image/png") and size_of(inline.images()[0]) == (320, 240)
        assert [(light["harmonize"], light["shadow"]) for light in inline.lighting] == [(0.5, "contact")]

        cutout = client.remove_background(photo)
        matte = client.remove_background(data_url(photo.read_bytes()), channels="alpha", output_format="webp")
        spent += cutout.credits_charged + matte.credits_charged
        assert cutout.content_type == "image/png" and (cutout.width, cutout.height) == (320, 240)
        assert decode_image(cutout.image, ImageLimits()).alpha is not None and matte.content_type == "image/webp"

        segmind = client.bg_replace(photo, prompt="marble kitchen counter", samples=2, seed=3)
        removebg = client.removebg(photo, format="png")
        spent += segmind.credits_charged + removebg.credits_charged
        assert len(segmind.images) == 2 and all(size_of(image) == (320, 240) for image in segmind.images)
        assert removebg.credits_charged == 1 and size_of(removebg.image) == (320, 240)

        submitted = client.run("remove-background", photo)
        assert submitted.status == "starting"
        done = client.wait(submitted.id, timeout_s=60)
        spent += done.credits_charged
        assert done.status == "succeeded" and done.credits_charged == 1 and done.output
        buffer = io.BytesIO()
        client.download(done.output[0], buffer)
        assert size_of(buffer.getvalue()) == (320, 240)
        assert client.cancel_prediction(submitted.id).status == "succeeded"  # a finished one is left as it is

        credits = client.credits()
        assert (credits.balance, credits.held, credits.available) == (100 - spent, 0, 100 - spent)
        assert 'route="/v1/image/replace-background",status="200"' in client.metrics()

    with Client(gateway.url, "rp_not-a-key") as stranger:
        with pytest.raises(ApiError) as refused:
            stranger.credits()
        assert (refused.value.status, refused.value.code) == (401, "unauthorized")
        with pytest.raises(ApiError) as refused_removebg:  # remove.bg's error shape, read the same way
            stranger.removebg(photo)
        assert (refused_removebg.value.status, refused_removebg.value.code) == (403, "unauthorized")


async def test_the_async_client(gateway: GatewayThread, make_key, photo: Path, tmp_path: Path) -> None:
    key = await make_key(20)
    async with AsyncClient(gateway.url, key) as client:
        replaced = await client.replace_background(photo, scene_prompt="sunset beach", seed=1)
        await client.download(replaced.output_url, tmp_path / "out.png")
        cutout = await client.remove_background(photo, channels="alpha")
        done = await client.wait((await client.run("background-change", photo, prompt="studio")).id, timeout_s=60)
        credits = await client.credits()
    assert size_of((tmp_path / "out.png").read_bytes()) == (320, 240) and size_of(cutout.image) == (320, 240)
    assert done.status == "succeeded" and credits.available == 20 - 5 - 1 - 5 == cutout.remaining_credits - 5


async def test_an_answer_lost_after_the_work_is_retried_and_charged_once(
    gateway: GatewayThread, live_settings: Settings, make_key, photo: Path
) -> None:
    key = await make_key(20)
    transport = LoseFirstAnswer()
    with Client(gateway.url, key, transport=transport, retry=FAST_RETRIES) as client:
        result = client.replace_background(photo, bg_color="#ffffff", seed=5)
        credits = client.credits()
    lost, replayed = transport.answers[0], transport.answers[1]
    keys = [request.headers.get("idempotency-key") for request in transport.requests[:2]]
    assert keys[0] and keys[0] == keys[1], "the retry carries the first attempt's Idempotency-Key"
    assert lost.status_code == 200 and lost.headers["x-credits-charged"] == "5", "the server did the work"
    assert replayed.headers["idempotent-replayed"] == "true" and result.id == lost.json()["id"]
    assert credits.available == 15
    assert await journal(live_settings, "capture") == [5]


async def test_the_async_client_retries_a_lost_answer_once_too(
    gateway: GatewayThread, live_settings: Settings, make_key, photo: Path
) -> None:
    key = await make_key(5)
    transport = LoseFirstAnswerAsync()
    async with AsyncClient(gateway.url, key, transport=transport, retry=FAST_RETRIES) as client:
        cutout = await client.remove_background(photo)
    assert len(transport.answers) == 2 and transport.answers[1].headers["idempotent-replayed"] == "true"
    assert cutout.remaining_credits == 4 and await journal(live_settings, "capture") == [1]


async def test_a_503_is_retried_after_its_retry_after(
    refusing_gateway: GatewayThread, live_settings: Settings, make_key, photo: Path
) -> None:
    key = await make_key(10)
    started = time.monotonic()
    with Client(refusing_gateway.url, key, retry=FAST_RETRIES) as client:
        result = client.replace_background(photo, bg_color="#ffffff")
    waited_s = time.monotonic() - started
    refuser: RefuseFirst = refusing_gateway.app
    assert (refuser.seen, refuser.refused) == (2, 1)
    assert waited_s >= 1.0, "Retry-After: 1 is honoured (the backoff alone would wait 0.05 s)"
    assert result.credits_charged == 5 and result.remaining_credits == 5
    assert await journal(live_settings, "capture") == [5]


async def test_the_gateways_own_429_is_retried(live_settings: Settings, make_key, photo: Path) -> None:
    limited = live_settings.model_copy(update={"rate_limit_per_minute": 120, "rate_limit_burst": 1})
    key = await make_key(10)
    with GatewayThread(limited) as gateway, Client(gateway.url, key, retry=FAST_RETRIES) as client:
        first = client.remove_background(photo)
        second = client.remove_background(photo)  # past the burst: 429 with Retry-After: 1, then admitted
    assert (first.remaining_credits, second.remaining_credits) == (9, 8)
    assert await journal(live_settings, "capture") == [1, 1]


async def test_retries_give_up_with_the_servers_error_and_nothing_is_charged(
    live_settings: Settings, make_key, photo: Path
) -> None:
    key = await make_key(10)
    app = RefuseFirst(create_app(live_settings), path=REPLACE, count=100)
    with GatewayThread(live_settings, app=app) as gateway, Client(gateway.url, key, retry=FAST_RETRIES) as client:
        with pytest.raises(ApiError) as refused:
            client.replace_background(photo, bg_color="#ffffff")
        assert client.credits().available == 10
    assert (refused.value.status, refused.value.code, refused.value.retry_after_s) == (503, "overloaded", 0)
    assert app.seen == FAST_RETRIES.max_retries + 1
    assert await journal(live_settings, "hold") == []


async def test_an_idempotency_key_of_another_request_is_refused(gateway: GatewayThread, make_key, photo: Path) -> None:
    key = await make_key(20)
    with Client(gateway.url, key) as client:
        client.remove_background(photo, idempotency_key="order-17")
        again = client.remove_background(photo, idempotency_key="order-17")
        with pytest.raises(ApiError) as reused:
            client.remove_background(photo, channels="alpha", idempotency_key="order-17")
        assert client.credits().available == 19 == again.remaining_credits
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")


async def test_grpc_channels_carry_the_key(gateway: GatewayThread, make_key, studio_png: bytes) -> None:
    key = await make_key(10)
    target = f"127.0.0.1:{gateway.app.state.grpc_server.port}"
    with grpc_channel(target, key) as channel:
        reply, call = ReplateStub(channel).RemoveBackground.with_call(
            pb.RemoveBackgroundRequest(image_bytes=studio_png)
        )
    assert (reply.width, reply.height) == (320, 240) and dict(call.trailing_metadata())["x-remaining-credits"] == "9"
    async with async_grpc_channel(target, key) as channel:
        balance = await ReplateStub(channel).GetBalance(pb.GetBalanceRequest())
    assert balance.available == 9
    with grpc_channel(target, "rp_not-a-key") as channel, pytest.raises(grpc.RpcError) as refused:
        ReplateStub(channel).GetBalance(pb.GetBalanceRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
