"""Image URLs served by a local server that stalls: it accepts and never answers, drips its headers, or sends
headers and then drips the body one byte at a time, forever. Each request fails with 422 `url_fetch_failed` once
`url_read_timeout_s` has passed (the read timeout bounds the whole fetch), nothing is held or charged, the gateway
hangs up on the stalling server, and meanwhile and afterwards it serves other requests promptly with no pipeline
slot left taken. 127.0.0.1 is reachable only because the test allow-lists it (`url_allowed_hosts`)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from gateway.tritonserver import TritonServer
from tests.conftest import data_url
from tests.faults.conftest import (
    PRICE_REMOVE,
    FaultRecord,
    FaultReport,
    GatewayProcess,
    credits_audit,
    credits_of,
    deploy,
    wait_until,
)

pytestmark = pytest.mark.slow
READ_TIMEOUT_S = 2.0
STALLS_PER_MODE = 2
DRIP_INTERVAL_S = 0.1
PROMPT_S = 10.0
"""A normal request during or after the stalls answers within this (a 320x240 cutout takes well under 1 s)."""


class StallingServer:
    """HTTP on 127.0.0.1 that never finishes an answer. `mode`: "silent" (reads the request, sends nothing),
    "headers" (drips the status line), "body" (complete headers promising 1 MB, then drips the body). Counts the
    connections it accepted and those the client closed."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.hung_up = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/photo.jpg"

    def _accept(self) -> None:
        with suppress(OSError):  # the listener is closed by close()
            while not self._stop.is_set():
                connection, _ = self.listener.accept()
                with self._lock:
                    self.accepted += 1
                threading.Thread(target=self._stall, args=(connection,), daemon=True).start()

    def _stall(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)  # the request
            hung_up = self._until_closed(connection) if self.mode == "silent" else self._drip(connection)
        if hung_up:
            with self._lock:
                self.hung_up += 1

    def _until_closed(self, connection: socket.socket) -> bool:
        connection.settimeout(DRIP_INTERVAL_S)
        while not self._stop.is_set():
            try:
                if connection.recv(1) == b"":
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False

    def _drip(self, connection: socket.socket) -> bool:
        try:
            for chunk in self._answer():
                if self._stop.is_set():
                    return False
                connection.sendall(chunk)
                time.sleep(DRIP_INTERVAL_S)
        except OSError:  # the peer hung up: a send to a closed connection fails (reset or broken pipe)
            return True
        return False

    def _answer(self) -> Iterator[bytes]:
        """Endless: a header line that never ends, or a body that never reaches its Content-Length."""
        if self.mode == "headers":
            yield from (bytes([byte]) for byte in b"HTTP/1.1 200 OK\r\nX-Slow: ")
            yield from itertools.repeat(b"a")
        yield b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
        yield from itertools.repeat(b"\xff")

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def stalling_servers() -> Iterator[list[StallingServer]]:
    servers = [StallingServer(mode) for mode in ("silent", "headers", "body")]
    yield servers
    for server in servers:
        server.close()


def test_stalled_image_urls_time_out_without_charge_or_stuck_work(
    tmp_path: Path,
    fault_triton: TritonServer,
    stalling_servers: list[StallingServer],
    studio_jpeg: bytes,
    fault_report: FaultReport,
) -> None:
    settings = {"url_allowed_hosts": '["127.0.0.1"]', "url_read_timeout_s": str(READ_TIMEOUT_S)}
    deployment = deploy(tmp_path, fault_triton.grpc_url, **settings)
    normal = {"image": data_url(studio_jpeg, "image/jpeg")}

    with GatewayProcess(deployment) as gateway:
        gateway.wait_ready()

        def post(path: str, body: dict[str, object]) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = httpx.post(f"{gateway.url}{path}", json=body, headers=deployment.headers, timeout=60)
            return response, time.monotonic() - started

        bodies = [
            ("/v1/image/replace-background", {"image_url": server.url, "bg_color": "#ffffff"})
            if index % 2 == 0
            else ("/v1/run", {"model": "remove-background", "image": server.url})
            for server in stalling_servers
            for index in range(STALLS_PER_MODE)
        ]
        with ThreadPoolExecutor(len(bodies)) as pool:
            stalls = [pool.submit(post, path, body) for path, body in bodies]
            wait_until(lambda: sum(s.accepted for s in stalling_servers) == len(bodies), 10, "the stalled fetches")
            during = post("/v1/remove-background", normal)
            held_during = credits_of(gateway.url, deployment)["held"]
            stalled = [future.result() for future in stalls]
        wait_until(lambda: sum(s.hung_up for s in stalling_servers) == len(bodies), 10, "the gateway to hang up")
        after = post("/v1/remove-background", normal)
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        final = credits_of(gateway.url, deployment)
        assert gateway.terminate() == 0

    audit = credits_audit(deployment.env)
    statuses = [response.status_code for response, _ in (*stalled, during, after)]
    successes = statuses.count(200)
    charged = deployment.credits - final["balance"]
    fault_report.add(
        FaultRecord(
            fault="Image URL stalled (silent, dripping headers/body)",
            injected=len(bodies),
            requests_sent=len(statuses),
            requests_failed=len(statuses) - successes,
            wrongly_charged=charged - PRICE_REMOVE * successes,
            holds_leaked=audit.open_holds,
        )
    )
    for response, elapsed_s in stalled:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "url_fetch_failed"
        assert f"within {READ_TIMEOUT_S:g} s" in response.json()["error"]["message"]
        assert READ_TIMEOUT_S <= elapsed_s < READ_TIMEOUT_S + 3
    for response, elapsed_s in (during, after):
        assert response.status_code == 200 and elapsed_s < PROMPT_S, (response.status_code, elapsed_s)
    assert held_during == 0
    assert "replate_pipeline_calls_inflight 0.0" in metrics and "replate_pipeline_calls_queued 0.0" in metrics
    assert ready.status_code == 200
    assert successes == 2 and charged == PRICE_REMOVE * successes and final["held"] == 0
    assert audit.passed and audit.open_holds == 0, audit.output
