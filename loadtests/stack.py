"""The stack a load test drives, on this machine: tritonserver, the gateway (`replate serve` in a process of its
own, so that its CPU and memory are measured apart and Locust's gevent patching never reaches it) and SQLite in a
fresh data folder, with API keys made through gateway.admin like `replate keys create`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import tritonclient.grpc as tritonclient
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from gateway.admin import create_key
from gateway.credits import unsettled_holds
from gateway.db import Account, CreditEntry, create_engine, create_sessionmaker
from gateway.migrate import upgrade_database
from gateway.settings import Settings
from gateway.tritonserver import TritonServer

LOAD_ACCOUNT = "loadtest"
WARMUP_ACCOUNT = "loadtest-warmup"
ACCOUNT_CREDITS = 10**9
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class StackError(RuntimeError):
    """The gateway exited or did not become ready; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """Triton and the gateway on free local ports; `keys` holds the load and warm-up accounts' API keys."""

    def __init__(self, data_dir: Path) -> None:
        # The gateway process reads the same REPLATE_* environment, so prices and limits agree with these settings.
        self.settings = Settings(data_dir=data_dir, http_port=free_port(), grpc_port=free_port())
        self.triton = TritonServer(data_dir / "triton", self.settings.models_dir)
        self.gateway_log = data_dir / "gateway.log"
        self.keys: dict[str, str] = {}
        self._gateway: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"

    @property
    def pids(self) -> dict[str, int]:
        if self._gateway is None or self.triton.pid is None:
            raise StackError("the stack is not running")
        return {"gateway": self._gateway.pid, "triton": self.triton.pid}

    def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_database(self.settings.database_url)
        for account in (LOAD_ACCOUNT, WARMUP_ACCOUNT):
            self.keys[account] = asyncio.run(create_key(self.settings, account, ACCOUNT_CREDITS))
        self.triton.start()
        self._start_gateway()

    def _start_gateway(self) -> None:
        command = [sys.executable, "-m", "replate.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.settings.http_port), "--data-dir", str(self.settings.data_dir)]
        command += ["--triton-url", self.triton.grpc_url]
        environment = {**os.environ, "REPLATE_GRPC_PORT": str(self.settings.grpc_port)}
        with self.gateway_log.open("wb") as log:
            self._gateway = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._gateway.poll() is not None:
                raise StackError(f"the gateway exited with {self._gateway.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise StackError(f"the gateway was not ready after {READY_TIMEOUT_S:.0f} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.gateway_log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._gateway is not None and self._gateway.poll() is None:
            self._gateway.send_signal(signal.SIGTERM)
            try:
                self._gateway.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._gateway.kill()
                self._gateway.wait()
        self.triton.stop()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def model_statistics(self) -> dict[str, Any]:
        """Triton's cumulative statistics of every model, as tritonclient's JSON."""
        client = tritonclient.InferenceServerClient(self.triton.grpc_url)
        try:
            return dict(client.get_inference_statistics(as_json=True))
        finally:
            client.close()

    def journal(self, account: str = LOAD_ACCOUNT) -> tuple[dict[str, int], int]:
        """(credits captured per operation, holds not yet settled) of an account, from the credit journal."""
        return asyncio.run(_read_journal(self.settings.database_url, account))

    def wait_settled(self, timeout_s: float, account: str = LOAD_ACCOUNT) -> tuple[dict[str, int], int]:
        """The journal once no hold is open (queued predictions settle late), or as it is after timeout_s."""
        deadline = time.monotonic() + timeout_s
        captured, open_holds = self.journal(account)
        while open_holds and time.monotonic() < deadline:
            time.sleep(1.0)
            captured, open_holds = self.journal(account)
        return captured, open_holds


async def _read_journal(database_url: str, account: str) -> tuple[dict[str, int], int]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            account_id = (await session.execute(select(Account.id).where(Account.name == account))).scalar_one()
            hold = aliased(CreditEntry)
            captures = await session.execute(
                select(hold.operation, func.sum(CreditEntry.amount))
                .join(hold, CreditEntry.hold_id == hold.id)
                .where(CreditEntry.account_id == account_id, CreditEntry.kind == "capture")
                .group_by(hold.operation)
            )
            open_holds = await session.execute(
                unsettled_holds(func.count(CreditEntry.id)).where(CreditEntry.account_id == account_id)
            )
            return {operation: int(total) for operation, total in captures}, int(open_holds.scalar_one())
    finally:
        await engine.dispose()
