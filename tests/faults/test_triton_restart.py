"""Triton killed (SIGKILL, models included) while requests are in it, then started again on the same ports: the
requests in flight and those sent during the outage fail with 503 `unavailable` and cost nothing, /readyz says
so, and once Triton is ready again new requests succeed, with no gateway restart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from replate.imageio import encode_image
from tests.conftest import data_url
from tests.faults.conftest import (
    PRICE_REPLACE,
    FaultRecord,
    FaultReport,
    GatewayProcess,
    credits_audit,
    credits_of,
    deploy,
    wait_until,
)
from tests.synthetic import make_studio_shot

pytestmark = pytest.mark.slow
IN_FLIGHT = 3
DURING_OUTAGE = 3
AFTER = 3


def test_triton_killed_mid_request_then_restarted(
    tmp_path: Path, studio_jpeg: bytes, fault_report: FaultReport
) -> None:
    triton = TritonServer(tmp_path / "triton", Settings().models_dir)
    triton.start()
    try:
        deployment = deploy(tmp_path / "gateway", triton.grpc_url)
        with GatewayProcess(deployment) as gateway:
            gateway.wait_ready()
            statuses = _run_the_fault(gateway, deployment, triton, studio_jpeg)
            final = credits_of(gateway.url, deployment)
            assert gateway.terminate() == 0
    finally:
        triton.stop()
    audit = credits_audit(deployment.env)
    successes = statuses.count(200)
    charged = deployment.credits - final["balance"]
    fault_report.add(
        FaultRecord(
            fault="Triton killed mid-request, restarted",
            injected=1,
            requests_sent=len(statuses),
            requests_failed=len(statuses) - successes,
            wrongly_charged=charged - PRICE_REPLACE * successes,
            holds_leaked=audit.open_holds,
        )
    )
    assert audit.passed and audit.open_holds == 0, audit.output
    assert successes == AFTER and charged == PRICE_REPLACE * successes, statuses
    assert final["held"] == 0


def _run_the_fault(gateway: GatewayProcess, deployment, triton: TritonServer, studio_jpeg: bytes) -> list[int]:  # type: ignore[no-untyped-def]
    rgb, _ = make_studio_shot(2400, 1800, seed=5)  # about 3 s in Triton here: long enough to be killed in it
    slow = {"image_url": data_url(encode_image(rgb, "jpeg"), "image/jpeg"), "scene_prompt": "warm studio"}
    quick = {"image_url": data_url(studio_jpeg, "image/jpeg"), "bg_color": "#ffffff"}

    def post(body: dict[str, object]) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/image/replace-background", json=body, headers=deployment.headers, timeout=120
        )

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        in_flight = [pool.submit(post, slow) for _ in range(IN_FLIGHT)]
        wait_until(
            lambda: credits_of(gateway.url, deployment)["held"] == PRICE_REPLACE * IN_FLIGHT, 60, "the holds in flight"
        )
        triton.kill()
        interrupted = [future.result() for future in in_flight]
    for response in interrupted:
        assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable", response.text
        assert "Retry-After" in response.headers

    ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"] == {"triton": False, "database": True}
    during = [post(quick) for _ in range(DURING_OUTAGE)]
    assert {(r.status_code, r.json()["error"]["code"]) for r in during} == {(503, "unavailable")}
    assert credits_of(gateway.url, deployment) == {
        "balance": deployment.credits,
        "held": 0,
        "available": deployment.credits,
    }

    triton.start()  # the same ports; the gateway's channel reconnects by itself
    wait_until(lambda: httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200, 60, "/readyz after restart")
    after = [post(quick) for _ in range(AFTER)]
    for response in after:
        assert response.status_code == 200, response.text
    return [response.status_code for response in (*interrupted, *during, *after)]
