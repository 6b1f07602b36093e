"""A gateway killed (SIGKILL) while predictions are processing loses none of them and charges none twice, on SQLite
and on PostgreSQL: the restarted gateway takes over the jobs whose lease expired."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.tritonserver import TritonServer
from replate.imageio import encode_image
from tests.conftest import data_url
from tests.integration.conftest import free_port
from tests.integration.test_serve_command import read_until
from tests.synthetic import make_studio_shot

pytestmark = pytest.mark.slow
JOBS = 6


def start_gateway(data_dir: Path, port: int, triton: TritonServer, database_url: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REPLATE_DATA_DIR": str(data_dir),
        "REPLATE_HTTP_PORT": str(port),
        "REPLATE_GRPC_PORT": "0",
        "REPLATE_TRITON_URL": triton.grpc_url,
        "REPLATE_DATABASE_URL": database_url,
        "REPLATE_PREDICTION_LEASE_S": "2",
        "REPLATE_PREDICTION_WORKERS": "1",
    }
    command = [sys.executable, "-m", "replate.cli", "serve"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_predictions_survive_a_killed_gateway(
    database: str, tmp_path: Path, triton: TritonServer, request: pytest.FixtureRequest
) -> None:
    database_url = "" if database == "sqlite" else request.getfixturevalue("postgres_url")
    rgb, _ = make_studio_shot(1600, 1200, seed=9)
    body = {"model": "background-change", "image": data_url(encode_image(rgb, "jpeg")), "prompt": "warm studio"}
    port = free_port()
    gateway = start_gateway(tmp_path, port, triton, database_url)
    base = f"http://127.0.0.1:{port}"
    try:
        key = read_until(gateway, r"API key: (\S+)")[0].group(1)
        read_until(gateway, r"Uvicorn running on")
        headers = {"Authorization": f"Bearer {key}"}
        ids = [httpx.post(f"{base}/v1/run", json=body, headers=headers, timeout=30).json()["id"] for _ in range(JOBS)]
        deadline = time.monotonic() + 30
        status = "starting"
        while status == "starting":
            assert time.monotonic() < deadline, "the first prediction never started"
            status = httpx.get(f"{base}/v1/predictions/{ids[0]}", headers=headers).json()["status"]
        assert status == "processing", "the gateway must be killed while a prediction is processing"
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.communicate(timeout=30)

    restarted = start_gateway(tmp_path, port, triton, database_url)
    try:
        read_until(restarted, r"Uvicorn running on")
        finals = {}
        deadline = time.monotonic() + 120
        while len(finals) < JOBS:
            assert time.monotonic() < deadline, f"unfinished predictions: {set(ids) - set(finals)}"
            for prediction_id in set(ids) - set(finals):
                prediction = httpx.get(f"{base}/v1/predictions/{prediction_id}", headers=headers).json()
                if prediction["status"] not in ("starting", "processing"):
                    finals[prediction_id] = prediction
            time.sleep(0.2)
        credits = httpx.get(f"{base}/v1/credits", headers=headers).json()
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=30)
    assert {prediction["status"] for prediction in finals.values()} == {"succeeded"}
    assert credits == {"balance": 1000 - 5 * JOBS, "held": 0, "available": 1000 - 5 * JOBS}
