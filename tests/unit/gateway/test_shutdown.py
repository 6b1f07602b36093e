"""Shutdown: requests that uvicorn cancels once the grace has run out answer 503 `unavailable` with nothing held,
and the lifespan's end waits until no pipeline slot (so no credit hold) is left in flight."""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import begin_shutdown, create_app
from tests.conftest import data_url
from tests.fakes import InProcessPipelines
from tests.unit.gateway.conftest import auth, running_client, stub_resolver
from tests.unit.gateway.test_admission import REMOVE, admission, credits, hold_slot, wait_until


async def test_wait_idle_returns_once_the_last_slot_is_let_go() -> None:
    limiter, release = admission(max_inflight=2), asyncio.Event()
    holders = [asyncio.create_task(hold_slot(limiter, release, [], name)) for name in ("a", "b")]
    await wait_until(lambda: limiter._inflight == 2)
    assert await limiter.wait_idle(0.05) is False
    release.set()
    assert await limiter.wait_idle(5) is True
    await asyncio.gather(*holders)


@pytest.mark.parametrize("stopping", [True, False])
async def test_a_cancelled_request_holds_nothing_and_answers_503_only_while_stopping(
    stopping: bool, settings, make_key, studio_png
) -> None:
    key = await make_key(10)
    gated = InProcessPipelines(gate=asyncio.Event())  # never opened: the request stays in the pipeline
    app = create_app(settings, pipelines=gated, resolver=stub_resolver)
    async with running_client(app) as client:
        body = {"image": data_url(studio_png), "channels": "alpha"}
        request = asyncio.create_task(client.post(REMOVE, json=body, headers=auth(key)))
        await wait_until(lambda: len(gated.calls) == 1)
        if stopping:
            begin_shutdown(app)
        request.cancel()  # what uvicorn does to the requests still running when the grace is over
        if stopping:
            response = await request
            assert response.status_code == 503 and response.headers["retry-after"] == "5"
            assert response.json()["error"]["code"] == "unavailable"
            assert "nothing was charged" in response.json()["error"]["message"]
            assert response.headers["x-remaining-credits"] == "10"
        else:
            with pytest.raises(asyncio.CancelledError):
                await request
        assert await credits(client, key) == {"balance": 10, "held": 0, "available": 10}
