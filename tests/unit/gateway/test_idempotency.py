"""Idempotency-Key on SQLite and PostgreSQL: replayed once-charged results, refused reuse, waiting duplicates."""

from __future__ import annotations

import asyncio

import pytest

from gateway import idempotency
from replate.errors import Unavailable
from tests.conftest import data_url
from tests.unit.gateway.conftest import auth
from tests.unit.gateway.test_admission import wait_until

REPLACE = "/v1/image/replace-background"


def request_body(studio_png: bytes, color: str = "#ffffff") -> dict[str, object]:
    return {"image_url": data_url(studio_png), "bg_color": color, "return_base64": True}


async def test_a_retry_is_answered_with_the_first_result_and_charged_once(
    db_client, db_make_key, studio_png, pipelines
) -> None:
    key = await db_make_key(100)
    headers = {**auth(key), "Idempotency-Key": "order-42"}
    first = await db_client.post("/v1/image/replace-background", json=request_body(studio_png), headers=headers)
    again = await db_client.post("/v1/image/replace-background", json=request_body(studio_png), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["x-remaining-credits"] == "95"
    assert pipelines.calls == ["replace_background"]


async def test_the_same_key_with_another_body_is_refused(db_client, db_make_key, studio_png) -> None:
    key = await db_make_key(100)
    headers = {**auth(key), "Idempotency-Key": "order-43"}
    await db_client.post("/v1/image/replace-background", json=request_body(studio_png), headers=headers)
    other = await db_client.post(
        "/v1/image/replace-background", json=request_body(studio_png, "#000000"), headers=headers
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.headers["x-remaining-credits"] == "95"


async def test_keys_belong_to_their_account(db_client, db_make_key, studio_png, pipelines) -> None:
    """Another account's key of the same name, in flight or done, is invisible: no wait, no replay, no 422."""
    first, second = await db_make_key(100), await db_make_key(100)
    pipelines.gate = asyncio.Event()
    colours = {first: "#ffffff", second: "#000000"}

    def post(key: str):
        headers = {**auth(key), "Idempotency-Key": "shared-name"}
        return db_client.post(
            "/v1/image/replace-background", json=request_body(studio_png, colours[key]), headers=headers
        )

    in_flight = [asyncio.create_task(post(key)) for key in (first, second)]
    await wait_until(lambda: len(pipelines.calls) == 2)  # the second account ran while the first held the name
    pipelines.gate.set()
    responses = [await task for task in in_flight]
    assert [response.status_code for response in responses] == [200, 200]
    assert not any("idempotent-replayed" in response.headers for response in responses)
    assert responses[0].json()["outputs"] != responses[1].json()["outputs"]
    for key, response in zip((first, second), responses, strict=True):
        replay = await post(key)
        assert replay.headers["idempotent-replayed"] == "true" and replay.json() == response.json()
    assert len(pipelines.calls) == 2


async def test_concurrent_duplicates_wait_for_the_first(db_client, db_make_key, studio_png, pipelines) -> None:
    key = await db_make_key(100)
    headers = {**auth(key), "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(
            db_client.post("/v1/image/replace-background", json=request_body(studio_png), headers=headers)
            for _ in range(5)
        )
    )
    assert {response.status_code for response in responses} == {200}
    assert len({response.text for response in responses}) == 1
    assert pipelines.calls == ["replace_background"]
    credits = (await db_client.get("/v1/credits", headers=auth(key))).json()
    assert credits == {"balance": 95, "held": 0, "available": 95}


async def test_a_failed_attempt_can_be_retried_with_the_same_key(db_client, db_make_key, studio_png, pipelines) -> None:
    key = await db_make_key(100)
    headers = {**auth(key), "Idempotency-Key": "flaky"}
    pipelines.fail_with = Unavailable("the inference server is unavailable; try again shortly")
    failed = await db_client.post("/v1/image/replace-background", json=request_body(studio_png), headers=headers)
    assert failed.status_code == 503
    pipelines.fail_with = None
    retried = await db_client.post("/v1/image/replace-background", json=request_body(studio_png), headers=headers)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert retried.headers["x-remaining-credits"] == "95"


async def test_a_request_cancelled_twice_leaves_its_key_free_for_the_retry(
    db_client, db_make_key, studio_png, pipelines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client gone mid-inference, then a second cancellation (the server shutting down, say) while the key is
    being forgotten: the key is still forgotten, so the retry runs at once instead of waiting for it to expire."""
    key = await db_make_key(100)
    headers = {**auth(key), "Idempotency-Key": "order-cancelled"}
    pipelines.gate = asyncio.Event()
    forget = idempotency._forget
    request: list[asyncio.Task] = []

    async def forget_while_cancelled_again(*args: object) -> None:
        request[0].cancel()
        await asyncio.sleep(0)  # where the second cancellation lands
        await forget(*args)

    monkeypatch.setattr(idempotency, "_forget", forget_while_cancelled_again)
    request.append(asyncio.create_task(db_client.post(REPLACE, json=request_body(studio_png), headers=headers)))
    await wait_until(lambda: pipelines.calls == ["replace_background"])
    request[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await request[0]
    monkeypatch.undo()
    pipelines.gate.set()
    retry = await asyncio.wait_for(db_client.post(REPLACE, json=request_body(studio_png), headers=headers), 10)
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    assert retry.headers["x-remaining-credits"] == "95", "the cancelled attempt charged nothing"
    assert pipelines.calls == ["replace_background"] * 2
