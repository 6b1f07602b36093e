"""The outputs folder becomes unwritable (replaced by a file: a read-only folder does not stop root): synchronous
replace-background answers 503 `storage_unavailable` with Retry-After, predictions fail with that code once their
attempts are spent, every hold is released and nothing is charged; outputs that need no storage (data URLs, a
cutout answered with its bytes) still succeed. Once the folder is back, both paths succeed again and their output
URLs serve the images, with no gateway restart."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.tritonserver import TritonServer
from tests.conftest import data_url
from tests.faults.conftest import (
    PRICE_REMOVE,
    PRICE_REPLACE,
    FaultRecord,
    FaultReport,
    GatewayProcess,
    credits_after,
    credits_audit,
    credits_of,
    deploy,
    final_prediction,
)

pytestmark = pytest.mark.slow
SYNC_WHILE_BROKEN = 2


@contextmanager
def outputs_replaced_by_file(outputs_dir: Path) -> Iterator[None]:
    away = outputs_dir.with_name("outputs.away")
    outputs_dir.rename(away)
    outputs_dir.write_text("not a folder")
    try:
        yield
    finally:
        outputs_dir.unlink()
        away.rename(outputs_dir)


def test_unwritable_storage_fails_without_charge_then_recovers(
    tmp_path: Path, fault_triton: TritonServer, studio_jpeg: bytes, fault_report: FaultReport
) -> None:
    # Predictions spend their three attempts against the broken storage: 0.2 s and 0.8 s apart, not 2 s and 8 s.
    deployment = deploy(tmp_path, fault_triton.grpc_url, prediction_retry_backoff_s="0.2")
    image = data_url(studio_jpeg, "image/jpeg")
    replace = {"image_url": image, "bg_color": "#336699"}
    runs = [
        {"model": "background-change", "image": image, "prompt": "warm studio"},
        {"model": "remove-background", "image": image},
    ]

    with GatewayProcess(deployment) as gateway:
        gateway.wait_ready()

        def post(path: str, body: dict[str, object]) -> httpx.Response:
            return httpx.post(f"{gateway.url}{path}", json=body, headers=deployment.headers, timeout=60)

        with outputs_replaced_by_file(tmp_path / "outputs"):
            refused = [post("/v1/image/replace-background", replace) for _ in range(SYNC_WHILE_BROKEN)]
            inline = post("/v1/image/replace-background", {**replace, "return_base64": True})
            cutout = post("/v1/remove-background", {"image": image})  # answered with the bytes, never stored
            submitted = [post("/v1/run", body).json()["id"] for body in runs]
            failed = [final_prediction(gateway.url, deployment, id_) for id_ in submitted]
            while_broken = credits_of(gateway.url, deployment)

        stored = post("/v1/image/replace-background", replace)
        resubmitted = [post("/v1/run", body).json()["id"] for body in runs]
        succeeded = [final_prediction(gateway.url, deployment, id_) for id_ in resubmitted]
        outputs = [stored.json()["output_url"], *(view["output"][0] for view in succeeded)]
        fetched = [httpx.get(url, timeout=30) for url in outputs]
        final = credits_of(gateway.url, deployment)
        assert gateway.terminate() == 0

    audit = credits_audit(deployment.env)
    statuses = [r.status_code for r in (*refused, inline, cutout, stored)] + [
        v["status"] for v in (*failed, *succeeded)
    ]
    successes = statuses.count(200) + statuses.count("succeeded")
    expected = 3 * PRICE_REPLACE + 2 * PRICE_REMOVE  # inline, cutout, stored and the two predictions
    charged = deployment.credits - final["balance"]
    fault_report.add(
        FaultRecord(
            fault="Storage unwritable (outputs folder replaced)",
            injected=1,
            requests_sent=len(statuses),
            requests_failed=len(statuses) - successes,
            wrongly_charged=charged - expected,
            holds_leaked=audit.open_holds,
        )
    )
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "storage_unavailable"
        assert response.headers["Retry-After"] == "30"
        assert str(tmp_path) not in response.text
    assert inline.status_code == 200 and inline.json()["output_url"].startswith("data:image/png;base64,")
    for view in failed:
        assert view["status"] == "failed" and view["error"]["code"] == "storage_unavailable", view
        assert view["credits_charged"] == 0
    assert cutout.status_code == 200 and cutout.headers["content-type"] == "image/png"
    assert while_broken == credits_after(deployment, charged=PRICE_REPLACE + PRICE_REMOVE)
    assert stored.status_code == 200, stored.text
    assert [view["status"] for view in succeeded] == ["succeeded", "succeeded"]
    for response in fetched:
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/")
    assert final == credits_after(deployment, charged=expected)
    assert audit.passed and audit.open_holds == 0, audit.output
