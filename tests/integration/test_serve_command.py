"""`replate serve` as a user runs it: a fresh data folder, a demo key printed once, the contract example, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import data_url
from tests.integration.conftest import free_port

pytestmark = pytest.mark.slow


def start_serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REPLATE_DATA_DIR": str(data_dir),
        "REPLATE_HTTP_PORT": str(port),
        "REPLATE_GRPC_PORT": str(free_port()),
    }
    env.pop("REPLATE_TRITON_URL", None)
    command = [sys.executable, "-m", "replate.cli", "serve"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(process: subprocess.Popen[str], pattern: str, timeout_s: float = 90) -> tuple[re.Match[str], str]:
    seen = []
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match, "".join(seen)
    raise AssertionError(f"{pattern!r} not printed; output was:\n{''.join(seen)}")


def test_serve_prints_a_key_serves_the_contract_example_and_stops_cleanly(tmp_path: Path, studio_jpeg: bytes) -> None:
    port = free_port()
    process = start_serve(tmp_path, port)
    try:
        key = read_until(process, r"^API key: (\S+)")[0].group(1)
        read_until(process, r"Uvicorn running on")
        body = {
            "image_url": data_url(studio_jpeg, "image/jpeg"),
            "scene_prompt": "modern kitchen counter with morning light",
        }
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/image/replace-background",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-remaining-credits"] == "995"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
        playground = httpx.get(f"http://127.0.0.1:{port}/").text
        assert f'<meta name="replate-demo-key" content="{key}">' in playground, "the first start pre-fills its key"
        triton_pids = subprocess.run(["pgrep", "-f", f"tritonserver.*{tmp_path}"], capture_output=True, text=True)
        assert triton_pids.stdout.strip(), "serve must have started its own tritonserver"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert subprocess.run(["pgrep", "-f", f"tritonserver.*{tmp_path}"], capture_output=True).returncode == 1

    second = start_serve(tmp_path, free_port())
    try:
        read_until(second, r"Accounts exist already; create another with: replate keys create")
        read_until(second, r"starting tritonserver")
    finally:
        second.send_signal(signal.SIGTERM)  # while Triton is still starting
        second.communicate(timeout=60)
    assert subprocess.run(["pgrep", "-f", f"tritonserver.*{tmp_path}"], capture_output=True).returncode == 1
