"""The Triton client against a Triton that is down and against a fake Triton gRPC server: Triton's queue-policy
refusals become 503 `overloaded` and a missed deadline 504 `timeout`, both releasing the hold; the deadline is sent
to Triton so that it drops a request its caller no longer waits for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from gateway.app import create_app
from gateway.triton import TritonPipelines
from replate.errors import Unavailable
from tests.conftest import data_url
from tests.unit.gateway.conftest import auth, running_client, stub_resolver


async def test_a_triton_that_is_down_is_unavailable() -> None:
    pipelines = TritonPipelines("127.0.0.1:1", timeout_s=5)
    try:
        assert await pipelines.is_ready() is False
        with pytest.raises(Unavailable):
            await pipelines.run("replace_background", b"\x89PNG", {})
    finally:
        await pipelines.close()


class FakeTriton(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Answers every inference with `refusal` (as Triton's queue policy words it), or never when it is None."""

    def __init__(self, refusal: str | None) -> None:
        self.refusal = refusal
        self.timeouts_us: list[int] = []

    async def ModelInfer(
        self, request: service_pb2.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelInferResponse:
        self.timeouts_us.append(request.parameters["timeout"].int64_param)
        if self.refusal is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, self.refusal)
        await asyncio.sleep(60)
        return service_pb2.ModelInferResponse()


@asynccontextmanager
async def fake_triton(refusal: str | None) -> AsyncIterator[tuple[str, FakeTriton]]:
    server = grpc.aio.server()
    servicer = FakeTriton(refusal)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)


@pytest.mark.parametrize("refusal", ["Exceeds maximum queue size", "Request timeout expired"])
async def test_a_triton_queue_refusal_is_503_overloaded_and_charges_nothing(
    settings, make_key, studio_png, refusal
) -> None:
    key = await make_key(10)
    async with fake_triton(refusal) as (url, triton):
        app = create_app(settings.model_copy(update={"triton_url": url}), resolver=stub_resolver)
        async with running_client(app) as client:
            body = {"image": data_url(studio_png), "channels": "alpha"}
            response = await client.post("/v1/remove-background", json=body, headers=auth(key))
            assert response.status_code == 503 and response.json()["error"]["code"] == "overloaded"
            assert response.headers["retry-after"] == "2" and response.headers["x-remaining-credits"] == "10"
            balance = (await client.get("/v1/credits", headers=auth(key))).json()
            metrics = (await client.get("/metrics")).text
    assert balance == {"balance": 10, "held": 0, "available": 10}
    assert 'replate_rejections_total{reason="triton_overloaded"} 1.0' in metrics
    assert triton.timeouts_us == [int(settings.triton_timeout_s * 1_000_000)]


async def test_a_missed_deadline_is_504_timeout_and_charges_nothing(settings, make_key, studio_png) -> None:
    key = await make_key(10)
    async with fake_triton(None) as (url, triton):
        app = create_app(settings.model_copy(update={"triton_url": url, "triton_timeout_s": 0.2}))
        async with running_client(app) as client:
            body = {"image_url": data_url(studio_png), "bg_color": "#ffffff"}
            response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
            assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
            assert response.headers["x-remaining-credits"] == "10" and "retry-after" not in response.headers
            balance = (await client.get("/v1/credits", headers=auth(key))).json()
    assert balance == {"balance": 10, "held": 0, "available": 10}
    assert triton.timeouts_us == [200_000]  # Triton is told the deadline too
