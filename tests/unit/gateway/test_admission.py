"""Admission control and backpressure: the in-flight limiter and its queue, the per-account rate limit, and how
refusals reach clients over HTTP and gRPC (503 / 429 with Retry-After, nothing charged). Pipelines that wait on an
asyncio.Event fill the limiter deterministically."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gateway.admission import Admission, RateLimiter
from gateway.app import create_app
from gateway.errors import Overloaded, RateLimited
from gateway.metrics import Metrics
from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.settings import Settings
from tests.conftest import data_url
from tests.fakes import InProcessPipelines
from tests.unit.gateway.conftest import auth, running_client, stub_resolver
from tests.unit.gateway.test_grpc_api import auth as grpc_auth
from tests.unit.gateway.test_grpc_api import available as grpc_available
from tests.unit.gateway.test_grpc_api import rpc_error, serving
from tests.unit.gateway.test_predictions import poll

REMOVE = "/v1/remove-background"


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def admission(max_inflight: int = 1, max_queued: int = 1, queue_timeout_s: float = 5.0) -> Admission:
    return Admission(
        max_inflight=max_inflight, max_queued=max_queued, queue_timeout_s=queue_timeout_s, metrics=Metrics.create()
    )


def rejections(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("replate_rejections_total", {"reason": reason}) or 0.0


async def hold_slot(limiter: Admission, release: asyncio.Event, order: list[str], name: str) -> None:
    async with limiter.request_slot():
        order.append(name)
        await release.wait()


# The limiter on its own


async def test_past_the_queue_a_request_is_overloaded_at_once() -> None:
    limiter, release, order = admission(max_inflight=1, max_queued=1), asyncio.Event(), []
    tasks = [asyncio.create_task(hold_slot(limiter, release, order, name)) for name in ("first", "queued")]
    await wait_until(lambda: limiter._metrics.queued._value.get() == 1)
    with pytest.raises(Overloaded) as caught:
        async with limiter.request_slot():
            pass
    assert caught.value.code == "overloaded" and 1 <= caught.value.retry_after_s <= 60
    assert rejections(limiter._metrics, "queue_full") == 1
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "queued"]


async def test_a_freed_slot_goes_to_the_oldest_waiter() -> None:
    limiter, release, order = admission(max_inflight=1, max_queued=3), asyncio.Event(), []
    tasks = []
    for name in ("a", "b", "c", "d"):
        tasks.append(asyncio.create_task(hold_slot(limiter, release, order, name)))
        await wait_until(lambda: len(limiter._waiters) + len(order) == len(tasks))
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c", "d"]
    assert limiter._inflight == 0 and not limiter._waiters


async def test_a_request_that_waits_past_the_queue_timeout_is_overloaded() -> None:
    limiter, release = admission(max_inflight=1, queue_timeout_s=0.05), asyncio.Event()
    holder = asyncio.create_task(hold_slot(limiter, release, [], "holder"))
    await wait_until(lambda: limiter._inflight == 1)
    with pytest.raises(Overloaded):
        async with limiter.request_slot():
            pass
    assert rejections(limiter._metrics, "queue_timeout") == 1 and not limiter._waiters
    release.set()
    await holder
    assert limiter._inflight == 0


async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    limiter, release = admission(max_inflight=1), asyncio.Event()
    holder = asyncio.create_task(hold_slot(limiter, release, [], "holder"))
    waiter = asyncio.create_task(hold_slot(limiter, release, [], "waiter"))
    await wait_until(lambda: len(limiter._waiters) == 1)
    waiter.cancel()
    release.set()
    await holder
    assert waiter.cancelled() and limiter._inflight == 0 and not limiter._waiters


async def test_workers_wait_without_bound_and_outside_the_request_queue() -> None:
    limiter, release, order = admission(max_inflight=1, max_queued=0, queue_timeout_s=0.01), asyncio.Event(), []
    holder = asyncio.create_task(hold_slot(limiter, release, order, "request"))
    await wait_until(lambda: limiter._inflight == 1)

    async def work() -> None:
        async with limiter.worker_slot():
            order.append("worker")

    worker = asyncio.create_task(work())
    await wait_until(lambda: len(limiter._waiters) == 1)
    await asyncio.sleep(0.05)  # past the request queue's timeout
    release.set()
    await asyncio.gather(holder, worker)
    assert order == ["request", "worker"]


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    metrics = Metrics.create()
    limiter = RateLimiter(per_minute=60, burst=2, rejections=metrics.rejections, clock=lambda: now[0])
    limiter.check(1)
    limiter.check(1)
    with pytest.raises(RateLimited) as caught:
        limiter.check(1)
    assert caught.value.retry_after_s == 1 and rejections(metrics, "rate_limited") == 1
    limiter.check(2)  # another account has its own bucket
    now[0] = 1.0
    limiter.check(1)


def test_a_rate_of_zero_is_no_limit() -> None:
    limiter = RateLimiter(per_minute=0, burst=1, rejections=Metrics.create().rejections)
    for _ in range(100):
        limiter.check(1)


# Over HTTP


@pytest.fixture
def gate() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def gated(gate: asyncio.Event) -> InProcessPipelines:
    return InProcessPipelines(gate=gate)


def app_client(settings: Settings, pipelines: InProcessPipelines, **changes: object):
    app = create_app(settings.model_copy(update=changes), pipelines=pipelines, resolver=stub_resolver)
    return running_client(app)


async def credits(client: httpx.AsyncClient, key: str) -> dict[str, int]:
    return (await client.get("/v1/credits", headers=auth(key))).json()


async def test_over_capacity_is_503_with_retry_after_and_charges_nothing(
    settings, make_key, studio_png, gate, gated
) -> None:
    key = await make_key(10)
    body = {"image": data_url(studio_png), "channels": "alpha"}
    async with app_client(settings, gated, max_inflight=1, max_queued=1) as client:
        in_flight = asyncio.create_task(client.post(REMOVE, json=body, headers=auth(key)))
        queued = asyncio.create_task(client.post(REMOVE, json=body, headers=auth(key)))
        await wait_until(lambda: len(gated.calls) == 1)
        metrics = (await client.get("/metrics")).text
        assert "replate_pipeline_calls_inflight 1.0" in metrics and "replate_pipeline_calls_queued 1.0" in metrics
        refused = await client.post(REMOVE, json=body, headers=auth(key))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-remaining-credits"] == "9"  # only the request in flight holds a credit
        gate.set()
        assert [(await in_flight).status_code, (await queued).status_code] == [200, 200]
        assert await credits(client, key) == {"balance": 8, "held": 0, "available": 8}
        assert 'replate_rejections_total{reason="queue_full"} 1.0' in (await client.get("/metrics")).text
    assert len(gated.calls) == 2


async def test_a_queue_timeout_is_503_and_charges_nothing(settings, make_key, studio_png, gate, gated) -> None:
    key = await make_key(10)
    body = {"image": data_url(studio_png), "channels": "alpha"}
    async with app_client(settings, gated, max_inflight=1, queue_timeout_s=0.05) as client:
        in_flight = asyncio.create_task(client.post(REMOVE, json=body, headers=auth(key)))
        await wait_until(lambda: len(gated.calls) == 1)
        refused = await client.post(REMOVE, json=body, headers=auth(key))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        assert "retry-after" in refused.headers and refused.headers["x-remaining-credits"] == "9"
        gate.set()
        assert (await in_flight).status_code == 200
        assert await credits(client, key) == {"balance": 9, "held": 0, "available": 9}


async def test_the_removebg_endpoint_keeps_503_and_retry_after(settings, make_key, studio_png, gate, gated) -> None:
    key = await make_key(10)
    body = {"image": data_url(studio_png), "channels": "alpha"}
    async with app_client(settings, gated, max_inflight=1, max_queued=0) as client:
        in_flight = asyncio.create_task(client.post(REMOVE, json=body, headers=auth(key)))
        await wait_until(lambda: len(gated.calls) == 1)
        refused = await client.post(
            "/v1.0/removebg", data={"image_file_b64": data_url(studio_png)}, headers={"X-Api-Key": key}
        )
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert refused.json()["errors"][0]["code"] == "overloaded"
        gate.set()
        await in_flight


async def test_the_rate_limit_is_429_before_admission_and_charges_nothing(
    settings, make_key, studio_png, pipelines
) -> None:
    key, other = await make_key(10), await make_key(10)
    body = {"image": data_url(studio_png), "channels": "alpha"}
    async with app_client(settings, pipelines, rate_limit_per_minute=1, rate_limit_burst=1) as client:
        assert (await client.post(REMOVE, json=body, headers=auth(key))).status_code == 200
        limited = await client.post(REMOVE, json=body, headers=auth(key))
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60 and limited.headers["x-remaining-credits"] == "9"
        run = await client.post(
            "/v1/run", json={"model": "remove-background", "image": data_url(studio_png)}, headers=auth(key)
        )
        assert run.status_code == 429
        assert (await client.post(REMOVE, json=body, headers=auth(other))).status_code == 200
        assert await credits(client, key) == {"balance": 9, "held": 0, "available": 9}
    assert pipelines.calls == ["remove_background", "remove_background"]


async def test_a_prediction_worker_waits_for_a_slot(settings, make_key, studio_png, gate, gated) -> None:
    key = await make_key(10)
    body = {"image": data_url(studio_png), "channels": "alpha"}
    async with app_client(settings, gated, max_inflight=1, max_queued=0, prediction_workers=1) as client:
        in_flight = asyncio.create_task(client.post(REMOVE, json=body, headers=auth(key)))
        await wait_until(lambda: len(gated.calls) == 1)
        created = await client.post(
            "/v1/run", json={"model": "remove-background", "image": data_url(studio_png)}, headers=auth(key)
        )
        assert created.status_code == 201  # submission takes no slot: the queue of predictions is the database
        await asyncio.sleep(0.1)
        prediction = (await client.get(f"/v1/predictions/{created.json()['id']}", headers=auth(key))).json()
        assert prediction["status"] in ("starting", "processing") and len(gated.calls) == 1
        gate.set()
        assert (await in_flight).status_code == 200
        assert (await poll(client, key, created.json()["id"]))[-1].json()["status"] == "succeeded"
        assert await credits(client, key) == {"balance": 8, "held": 0, "available": 8}


# Over gRPC


@pytest.fixture
async def gated_grpc(settings: Settings, gated: InProcessPipelines) -> AsyncIterator:
    async with serving(settings.model_copy(update={"max_inflight": 1, "max_queued": 0}), gated) as harness:
        yield harness


async def test_grpc_over_capacity_is_unavailable_with_retry_pushback(
    gated_grpc, make_key, studio_png, gate, gated
) -> None:
    key = await make_key(10)
    request = pb.RemoveBackgroundRequest(image_bytes=studio_png)
    in_flight = asyncio.ensure_future(gated_grpc.stub.RemoveBackground(request, metadata=grpc_auth(key)))
    await wait_until(lambda: len(gated.calls) == 1)
    error = await rpc_error(gated_grpc.stub.RemoveBackground(request, metadata=grpc_auth(key)))
    trailers = dict(error.trailing_metadata())
    assert error.code().name == "UNAVAILABLE" and trailers["x-error-code"] == "overloaded"
    retry_after_s = int(trailers["retry-after"])
    assert retry_after_s >= 1 and trailers["grpc-retry-pushback-ms"] == str(retry_after_s * 1000)
    assert trailers["x-remaining-credits"] == "9"
    gate.set()
    await in_flight
    assert await grpc_available(gated_grpc, key) == 9


async def test_grpc_rate_limit_is_resource_exhausted(settings, make_key, studio_png, pipelines) -> None:
    key = await make_key(10)
    limited = settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 1})
    async with serving(limited, pipelines) as harness:
        request = pb.RemoveBackgroundRequest(image_bytes=studio_png)
        await harness.stub.RemoveBackground(request, metadata=grpc_auth(key))
        error = await rpc_error(harness.stub.RemoveBackground(request, metadata=grpc_auth(key)))
        assert error.code().name == "RESOURCE_EXHAUSTED"
        trailers = dict(error.trailing_metadata())
        assert trailers["x-error-code"] == "rate_limited" and int(trailers["retry-after"]) >= 1
        assert await grpc_available(harness, key) == 9


async def test_the_grpc_callers_deadline_bounds_the_triton_call(settings, make_key, studio_png, pipelines) -> None:
    key = await make_key(10)
    request = pb.RemoveBackgroundRequest(image_bytes=studio_png)
    async with serving(settings, pipelines) as harness:
        await harness.stub.RemoveBackground(request, metadata=grpc_auth(key), timeout=20)
        await harness.stub.RemoveBackground(request, metadata=grpc_auth(key))
    with_deadline, without = pipelines.timeouts
    assert with_deadline is not None and 10 < with_deadline <= 20
    assert without == settings.triton_timeout_s


async def test_a_grpc_caller_that_gives_up_while_queued_leaves_nothing_behind(
    settings, make_key, studio_png, gate, gated
) -> None:
    key = await make_key(10)
    request = pb.RemoveBackgroundRequest(image_bytes=studio_png)
    async with serving(settings.model_copy(update={"max_inflight": 1}), gated) as harness:
        in_flight = asyncio.ensure_future(harness.stub.RemoveBackground(request, metadata=grpc_auth(key)))
        await wait_until(lambda: len(gated.calls) == 1)
        error = await rpc_error(harness.stub.RemoveBackground(request, metadata=grpc_auth(key), timeout=0.2))
        assert error.code().name == "DEADLINE_EXCEEDED"
        admission = harness.services.admission
        await wait_until(lambda: not admission._waiters)
        gate.set()
        await in_flight
        assert admission._inflight == 0 and len(gated.calls) == 1
        assert await grpc_available(harness, key) == 9
