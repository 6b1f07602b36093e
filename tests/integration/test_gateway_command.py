"""The deployment's sequence, as the Helm chart runs it, against a real tritonserver and PostgreSQL: the migrations
Job (`replate db upgrade`, `replate keys bootstrap`), then the gateway image's entry point (read from its
Dockerfile) pointed at the external Triton; a billed request with the bootstrap key; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from gateway.tritonserver import TritonServer
from tests.conftest import data_url
from tests.deploy.dockerfiles import instructions
from tests.integration.conftest import free_port

pytestmark = pytest.mark.slow


def replate_command(argv: list[str]) -> list[str]:
    """`replate ...` through this interpreter (the console script of this checkout's venv)."""
    assert argv[0] == "replate"
    return [sys.executable, "-m", "replate.cli", *argv[1:]]


def test_migrate_bootstrap_then_the_gateway_entry_point_serves_through_external_triton(
    tmp_path: Path, postgres_url: str, triton: TritonServer, studio_png: bytes
) -> None:
    port = free_port()
    key = "rp_" + secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "REPLATE_DATA_DIR": str(tmp_path),
        "REPLATE_DATABASE_URL": postgres_url,
        "REPLATE_TRITON_URL": triton.grpc_url,
        "REPLATE_HTTP_PORT": str(port),
        "REPLATE_GRPC_PORT": str(free_port()),
        "REPLATE_BOOTSTRAP_KEY": key,
    }
    for step in (["replate", "db", "upgrade"], ["replate", "keys", "bootstrap", "--name", "admin", "--credits", "10"]):
        subprocess.run(replate_command(step), env=env, check=True, capture_output=True, timeout=60)

    [entrypoint] = (json.loads(value) for value in instructions("gateway", "ENTRYPOINT"))
    process = subprocess.Popen(replate_command(entrypoint), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", process)
        assert ready["checks"] == {"triton": True, "database": True}
        names = {child.name() for child in psutil.Process(process.pid).children(recursive=True)}
        assert "tritonserver" not in names, "the gateway must use the external Triton, not start its own"
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/remove-background",
            json={"image": data_url(studio_png)},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.content.startswith(b"\x89PNG")
        assert response.headers["x-remaining-credits"] == "9"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the gateway was not ready after {timeout_s} s")
