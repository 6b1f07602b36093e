"""The gRPC API through a real grpc.aio client: every call, its credits metadata, errors as statuses with
`x-error-code`, predictions, health, reflection, message size limits, and the generated code in step with the
.proto."""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc

from gateway.app import create_app
from gateway.deps import Services
from gateway.errors import GRPC_STATUS, HTTP_STATUS
from gateway.grpc_api import SERVICE_NAME, start_grpc_server
from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.proto.replate.v1 import replate_pb2_grpc
from gateway.settings import Settings
from replate.errors import ReplateError, SubjectNotFound, Unavailable
from replate.imageio import ImageLimits, probe_image
from tests.fakes import InProcessPipelines
from tests.unit.gateway.conftest import stub_resolver

ROOT = Path(__file__).resolve().parents[3]
PROTO = Path("gateway/proto/replate/v1/replate.proto")
GENERATED = ("replate_pb2.py", "replate_pb2.pyi", "replate_pb2_grpc.py")
TRUNCATED_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB")
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass(frozen=True)
class Harness:
    stub: replate_pb2_grpc.ReplateStub
    channel: grpc.aio.Channel
    services: Services
    http: httpx.AsyncClient


@asynccontextmanager
async def serving(settings: Settings, pipelines: InProcessPipelines) -> AsyncIterator[Harness]:
    """The gateway's services (from its lifespan) behind a gRPC server on a free port, and a client for it."""
    app = create_app(settings, pipelines=pipelines, resolver=stub_resolver)
    async with app.router.lifespan_context(app):
        server = await start_grpc_server(app.state.services, "127.0.0.1", 0)
        try:
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=UNLIMITED) as channel,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replate.test") as http,
            ):
                yield Harness(replate_pb2_grpc.ReplateStub(channel), channel, app.state.services, http)
        finally:
            await server.stop(None)


@pytest.fixture
async def grpc_api(settings: Settings, pipelines: InProcessPipelines) -> AsyncIterator[Harness]:
    async with serving(settings, pipelines) as harness:
        yield harness


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def available(grpc_api: Harness, key: str) -> int:
    return (await grpc_api.stub.GetBalance(pb.GetBalanceRequest(), metadata=auth(key))).available


def png_padded_to(png: bytes, size: int) -> bytes:
    """`png` grown to `size` bytes by a private ancillary chunk that decoders skip: a large file, few pixels."""
    filler = b"\0" * (size - len(png) - 12)
    chunk = struct.pack(">I", len(filler)) + b"rpAd" + filler + struct.pack(">I", zlib.crc32(b"rpAd" + filler))
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


# Synchronous calls


async def test_replace_background_returns_image_bytes_and_credits_metadata(grpc_api, make_key, studio_png) -> None:
    key = await make_key(20)
    request = pb.ReplaceBackgroundRequest(image_bytes=studio_png, bg_color="#204060", seed=7, num_outputs=2)
    call = grpc_api.stub.ReplaceBackground(request, metadata=auth(key))
    reply = await call
    assert len(reply.images) == 2 and (reply.width, reply.height) == (320, 240) and reply.seed == 7
    assert [probe_image(image, ImageLimits()).format for image in reply.images] == ["png", "png"]
    assert reply.credits_charged == 10 and reply.engines and "matting" in reply.engines and reply.timings_ms
    for metadata in (await call.initial_metadata(), await call.trailing_metadata()):
        assert metadata.get("x-credits-charged") == "10" and metadata.get("x-remaining-credits") == "10"
        assert metadata.get("x-request-id") == reply.id
    assert await available(grpc_api, key) == 10


async def test_replace_background_harmonises_and_reports_the_lighting(grpc_api, make_key, studio_png) -> None:
    key = await make_key(5)
    request = pb.ReplaceBackgroundRequest(
        image_bytes=studio_png, scene_prompt="grey studio", harmonize=0.5, shadow=pb.SHADOW_CAST, preserve_shadow=False
    )
    reply = await grpc_api.stub.ReplaceBackground(request, metadata=auth(key))
    assert reply.engines["harmonize"] == "classical"
    (lighting,) = reply.lighting
    assert lighting.shadow == "cast" and lighting.harmonize == 0.5
    assert 0 <= lighting.scene.azimuth_deg < 360 and 0 <= lighting.subject.strength <= 1


async def test_remove_background_returns_the_cutout(grpc_api, make_key, studio_png) -> None:
    key = await make_key(5)
    request = pb.RemoveBackgroundRequest(image_bytes=studio_png, channels=pb.CHANNELS_ALPHA)
    call = grpc_api.stub.RemoveBackground(request, metadata=auth(key))
    reply = await call
    assert probe_image(reply.image, ImageLimits()).format == "png" and (reply.width, reply.height) == (320, 240)
    assert reply.credits_charged == 1 and "matting" in reply.engines
    trailing = await call.trailing_metadata()
    assert trailing.get("x-credits-charged") == "1" and trailing.get("x-remaining-credits") == "4"


async def test_get_balance_accepts_x_api_key(grpc_api, make_key) -> None:
    key = await make_key(12)
    call = grpc_api.stub.GetBalance(pb.GetBalanceRequest(), metadata=(("x-api-key", key),))
    reply = await call
    assert (reply.balance, reply.held, reply.available) == (12, 0, 12)
    trailing = await call.trailing_metadata()
    assert trailing.get("x-remaining-credits") == "12" and "x-credits-charged" not in trailing


async def test_a_12_mb_image_is_accepted(grpc_api, make_key, studio_png) -> None:
    key = await make_key(5)
    image = png_padded_to(studio_png, 12 * 1024 * 1024)
    reply = await grpc_api.stub.RemoveBackground(pb.RemoveBackgroundRequest(image_bytes=image), metadata=auth(key))
    assert (reply.width, reply.height) == (320, 240) and reply.credits_charged == 1


async def test_an_image_over_the_byte_limit_is_image_too_large(grpc_api, make_key, studio_png, settings) -> None:
    key = await make_key(5)
    image = png_padded_to(studio_png, settings.max_image_bytes + 1)
    error = await rpc_error(
        grpc_api.stub.RemoveBackground(pb.RemoveBackgroundRequest(image_bytes=image), metadata=auth(key))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.trailing_metadata().get("x-error-code") == "image_too_large"
    assert await available(grpc_api, key) == 5


# Authentication and credits


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer rp_not-a-key"),), (("x-api-key", "nope"),)])
async def test_a_missing_or_unknown_key_is_unauthenticated(grpc_api, metadata) -> None:
    error = await rpc_error(grpc_api.stub.GetBalance(pb.GetBalanceRequest(), metadata=metadata))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "key" in error.details()
    trailing = error.trailing_metadata()
    assert trailing.get("x-error-code") == "unauthorized" and "x-remaining-credits" not in trailing


async def test_insufficient_credits_is_resource_exhausted_and_runs_nothing(
    grpc_api, make_key, studio_png, pipelines
) -> None:
    key = await make_key(4)
    request = pb.ReplaceBackgroundRequest(image_bytes=studio_png, scene_prompt="a beach")
    error = await rpc_error(grpc_api.stub.ReplaceBackground(request, metadata=auth(key)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "Not enough credits" in error.details()
    trailing = error.trailing_metadata()
    assert trailing.get("x-error-code") == "insufficient_credits" and trailing.get("x-remaining-credits") == "4"
    assert "x-credits-charged" not in trailing and pipelines.calls == []
    assert await available(grpc_api, key) == 4


# Invalid input: INVALID_ARGUMENT with the code and the field, nothing charged


def replace(studio_png: bytes, **fields: object) -> pb.ReplaceBackgroundRequest:
    return pb.ReplaceBackgroundRequest(image_bytes=studio_png, **{"scene_prompt": "a beach", **fields})


@pytest.mark.parametrize(
    ("make_request", "code", "named"),
    [
        (lambda png: pb.ReplaceBackgroundRequest(image_bytes=TRUNCATED_PNG, bg_color="#fff"), "image_corrupt", ""),
        (lambda png: replace(png, num_outputs=5), "invalid_request", "num_outputs"),
        (lambda png: replace(png, harmonize=2.0), "invalid_request", "harmonize"),
        (lambda png: replace(png, shadow=7), "invalid_request", "shadow"),
        (lambda png: replace(png, scene_prompt="x" * 2001), "invalid_request", "scene_prompt"),
        (lambda png: replace(png, output_format=9), "invalid_request", "output_format"),
        (lambda png: replace(png, bg_color="#ffffff"), "conflicting_scene_sources", "bg_color"),
        (lambda png: pb.ReplaceBackgroundRequest(scene_prompt="a beach"), "invalid_request", "image"),
        (lambda png: replace(png, scene_image_bytes=b"GIF89a"), "image_corrupt", "scene_image_bytes"),
        (lambda png: pb.ReplaceBackgroundRequest(image_url="http://intranet.example/a.png", bg_color="#fff"),
         "url_forbidden", "image_url"),
        (lambda png: pb.RemoveBackgroundRequest(image_bytes=png, output_format=pb.OUTPUT_FORMAT_JPEG),
         "invalid_request", "output_format"),
        (lambda png: pb.SubmitPredictionRequest(image_bytes=png), "invalid_request", "model"),
        (lambda png: pb.SubmitPredictionRequest(model=pb.MODEL_BACKGROUND_CHANGE, image_bytes=png),
         "invalid_request", "prompt"),
    ],
)  # fmt: skip
async def test_invalid_input_is_invalid_argument_with_its_code(
    grpc_api, make_key, studio_png, make_request, code, named
) -> None:
    key = await make_key(20)
    request = make_request(studio_png)
    method = {
        pb.ReplaceBackgroundRequest: grpc_api.stub.ReplaceBackground,
        pb.RemoveBackgroundRequest: grpc_api.stub.RemoveBackground,
        pb.SubmitPredictionRequest: grpc_api.stub.SubmitPrediction,
    }[type(request)]
    error = await rpc_error(method(request, metadata=auth(key)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.trailing_metadata().get("x-error-code") == code and named in error.details()
    assert error.trailing_metadata().get("x-remaining-credits") == "20"
    assert await available(grpc_api, key) == 20


@pytest.mark.parametrize(
    ("failure", "status", "details"),
    [
        (ReplateError("triton at 10.1.2.3:8001 said: segfault"), grpc.StatusCode.INTERNAL, "try again later"),
        (RuntimeError("10.1.2.3 exploded"), grpc.StatusCode.INTERNAL, "try again later"),
        (Unavailable("the inference server is not ready"), grpc.StatusCode.UNAVAILABLE, "not ready"),
        (SubjectNotFound("no subject separates from the backdrop"), grpc.StatusCode.INVALID_ARGUMENT, "no subject"),
    ],
)
async def test_pipeline_failures_cost_nothing_and_leak_nothing(
    grpc_api, make_key, studio_png, pipelines, failure, status, details
) -> None:
    key = await make_key(5)
    pipelines.fail_with = failure
    error = await rpc_error(
        grpc_api.stub.RemoveBackground(pb.RemoveBackgroundRequest(image_bytes=studio_png), metadata=auth(key))
    )
    assert error.code() == status and details in error.details() and "10.1.2.3" not in error.details()
    assert "Traceback" not in error.details()
    expected_code = "internal" if isinstance(failure, RuntimeError) else failure.code
    assert error.trailing_metadata().get("x-error-code") == expected_code
    assert await available(grpc_api, key) == 5


def test_every_error_code_has_a_grpc_status() -> None:
    assert set(HTTP_STATUS) <= set(GRPC_STATUS)
    assert GRPC_STATUS["unauthorized"] == grpc.StatusCode.UNAUTHENTICATED
    assert GRPC_STATUS["insufficient_credits"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert GRPC_STATUS["not_found"] == grpc.StatusCode.NOT_FOUND
    assert GRPC_STATUS["timeout"] == grpc.StatusCode.DEADLINE_EXCEEDED


# Predictions


async def poll(
    grpc_api: Harness, key: str, prediction_id: str, timeout_s: float = 20
) -> list[tuple[pb.Prediction, grpc.aio.Metadata]]:
    """Every poll (reply and trailing metadata) until the prediction ends."""
    polls = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        call = grpc_api.stub.GetPrediction(pb.GetPredictionRequest(id=prediction_id), metadata=auth(key))
        polls.append((await call, await call.trailing_metadata()))
        if polls[-1][0].status not in (pb.PREDICTION_STATUS_STARTING, pb.PREDICTION_STATUS_PROCESSING):
            return polls
        await asyncio.sleep(0.05)
    raise AssertionError(f"prediction {prediction_id} did not finish: {polls[-1][0]}")


async def test_a_prediction_with_inline_output_is_delivered_once_and_charged_once(
    grpc_api, make_key, studio_png
) -> None:
    key = await make_key(10)
    request = pb.SubmitPredictionRequest(model=pb.MODEL_REMOVE_BACKGROUND, image_bytes=studio_png, inline_output=True)
    call = grpc_api.stub.SubmitPrediction(request, metadata=auth(key))
    submitted = await call
    assert submitted.status == pb.PREDICTION_STATUS_STARTING and submitted.model == pb.MODEL_REMOVE_BACKGROUND
    assert submitted.HasField("created_at") and not submitted.HasField("completed_at")
    assert (await call.trailing_metadata()).get("x-remaining-credits") == "9"
    polls = await poll(grpc_api, key, submitted.id)
    final, metadata = polls[-1]
    assert final.status == pb.PREDICTION_STATUS_SUCCEEDED and final.credits_charged == 1
    assert metadata.get("x-credits-charged") == "1" and metadata.get("x-remaining-credits") == "9"
    assert all("x-credits-charged" not in earlier for _reply, earlier in polls[:-1])
    assert [probe_image(image, ImageLimits()).format for image in final.output_images] == ["png"]
    assert list(final.output_urls) == [] and final.HasField("completed_at") and final.predict_time_s > 0
    again, again_metadata = (await poll(grpc_api, key, submitted.id))[-1]
    assert again.status == pb.PREDICTION_STATUS_SUCCEEDED and list(again.output_images) == []
    assert "x-credits-charged" not in again_metadata
    assert await available(grpc_api, key) == 9


async def test_a_prediction_without_inline_output_returns_working_urls(
    grpc_api, make_key, studio_png, settings
) -> None:
    key = await make_key(10)
    request = pb.SubmitPredictionRequest(
        model=pb.MODEL_BACKGROUND_CHANGE, image_url=f"data:image/png;base64,{base64.b64encode(studio_png).decode()}",
        prompt="warm studio", output_format=pb.OUTPUT_FORMAT_JPEG,
    )  # fmt: skip
    submitted = await grpc_api.stub.SubmitPrediction(request, metadata=auth(key))
    final = (await poll(grpc_api, key, submitted.id))[-1][0]
    assert final.status == pb.PREDICTION_STATUS_SUCCEEDED and final.credits_charged == 5
    http_base = f"http://{settings.http_host}:{settings.http_port}"  # no public base URL is configured
    assert len(final.output_urls) == 1 and final.output_urls[0].startswith(f"{http_base}/v1/outputs/")
    fetched = await grpc_api.http.get(final.output_urls[0].removeprefix(http_base))
    assert fetched.status_code == 200 and probe_image(fetched.content, ImageLimits()).format == "jpeg"


async def test_predictions_are_visible_only_to_their_account(grpc_api, make_key, studio_png) -> None:
    owner, stranger = await make_key(10), await make_key(10)
    request = pb.SubmitPredictionRequest(model=pb.MODEL_REMOVE_BACKGROUND, image_bytes=studio_png)
    submitted = await grpc_api.stub.SubmitPrediction(request, metadata=auth(owner))
    for method, message in (
        (grpc_api.stub.GetPrediction, pb.GetPredictionRequest(id=submitted.id)),
        (grpc_api.stub.CancelPrediction, pb.CancelPredictionRequest(id=submitted.id)),
    ):
        error = await rpc_error(method(message, metadata=auth(stranger)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.trailing_metadata().get("x-error-code") == "not_found"
    await poll(grpc_api, owner, submitted.id)


async def test_canceling_a_queued_prediction_releases_its_credits(settings, pipelines, make_key, studio_png) -> None:
    async with serving(settings.model_copy(update={"prediction_workers": 0}), pipelines) as grpc_api:
        key = await make_key(10)
        request = pb.SubmitPredictionRequest(model=pb.MODEL_BACKGROUND_CHANGE, image_bytes=studio_png, prompt="dunes")
        submitted = await grpc_api.stub.SubmitPrediction(request, metadata=auth(key))
        assert await available(grpc_api, key) == 5
        call = grpc_api.stub.CancelPrediction(pb.CancelPredictionRequest(id=submitted.id), metadata=auth(key))
        canceled = await call
        assert canceled.status == pb.PREDICTION_STATUS_CANCELED and canceled.credits_charged == 0
        assert (await call.trailing_metadata()).get("x-remaining-credits") == "10"
        assert pipelines.calls == []


# Health, reflection, generated code


async def test_health_reports_serving(grpc_api) -> None:
    stub = health_pb2_grpc.HealthStub(grpc_api.channel)
    for service in ("", SERVICE_NAME):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_and_describes_the_service(grpc_api) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_api.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
    ]
    listed, described = [reply async for reply in stub.ServerReflectionInfo(iter(requests))]
    assert {service.name for service in listed.list_services_response.service} >= {
        SERVICE_NAME,
        "grpc.health.v1.Health",
    }
    assert described.file_descriptor_response.file_descriptor_proto


def test_generated_code_is_in_step_with_the_proto(tmp_path: Path) -> None:
    """Regenerate into a temporary folder; on a difference, run the command below and commit its output."""
    command = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{resources.files('grpc_tools') / '_proto'}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(ROOT / PROTO),
    ]
    assert protoc.main(command) == 0
    regenerate = "python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. " + str(PROTO)
    for name in GENERATED:
        generated = (tmp_path / PROTO.parent / name).read_text()
        committed = (ROOT / PROTO.parent / name).read_text()
        assert generated == committed, f"{PROTO.parent / name} is out of date: run `{regenerate}`"
