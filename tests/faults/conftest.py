"""Fault injection on 127.0.0.1 with real processes: tritonserver, `replate gateway` subprocesses and a PostgreSQL
cluster of the suite's own (the machine's shared PostgreSQL is never stopped).

Every test ends with `replate credits audit` on its database and records its figures (faults injected, requests
sent and failed, credits wrongly charged, holds leaked) in the fault report printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gateway.admin import create_key
from gateway.migrate import upgrade_database
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from tests.integration.conftest import free_port

PRICE_REPLACE = 5
PRICE_REMOVE = 1


# The report


@dataclass(frozen=True)
class FaultRecord:
    fault: str
    injected: int
    requests_sent: int
    requests_failed: int
    wrongly_charged: int
    """Credits taken beyond the price of the successful responses (must be 0)."""
    holds_leaked: int
    """Holds still open once the fault is over and the reaper has run (must be 0)."""


@dataclass
class FaultReport:
    records: list[FaultRecord] = field(default_factory=list)

    def add(self, record: FaultRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        header = f"{'fault':<52} {'injected':>8} {'sent':>6} {'failed':>6} {'overcharged':>11} {'leaked holds':>12}"
        rows = [
            f"{r.fault:<52} {r.injected:>8} {r.requests_sent:>6} {r.requests_failed:>6} "
            f"{r.wrongly_charged:>11} {r.holds_leaked:>12}"
            for r in self.records
        ]
        total = FaultRecord(
            "total",
            *(sum(getattr(r, name) for r in self.records) for name in list(FaultRecord.__dataclass_fields__)[1:]),
        )
        rows.append(
            f"{total.fault:<52} {total.injected:>8} {total.requests_sent:>6} {total.requests_failed:>6} "
            f"{total.wrongly_charged:>11} {total.holds_leaked:>12}"
        )
        return [header, *rows]


_REPORT = FaultReport()


@pytest.fixture
def fault_report() -> FaultReport:
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT.records:
        terminalreporter.write_sep("=", "fault injection report (tests/faults)")
        for line in _REPORT.lines():
            terminalreporter.write_line(line)


# The ledger audit


@dataclass(frozen=True)
class Audit:
    passed: bool
    open_holds: int
    output: str


def credits_audit(env: dict[str, str]) -> Audit:
    """`replate credits audit` as an operator runs it, with the gateway's environment (database, hold expiry)."""
    result = subprocess.run(
        [sys.executable, "-m", "replate.cli", "credits", "audit"], env=env, capture_output=True, text=True, timeout=60
    )
    first_line = result.stdout.splitlines()[0] if result.stdout else ""
    open_holds = int(first_line.rsplit(",", 1)[-1].split()[0]) if "open holds" in first_line else -1
    return Audit(passed=result.returncode == 0, open_holds=open_holds, output=result.stdout + result.stderr)


# PostgreSQL of the suite's own


def postgres_bin_dir() -> Path | None:
    """Debian's versioned binaries (the newest), else initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivatePostgres:
    """A throwaway cluster in a temporary folder on a free port, trust authentication on 127.0.0.1. initdb refuses
    to run as root, so as root the cluster belongs to the `postgres` user."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=90)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.root, "postgres")
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run([*self.as_user, *initdb], check=True, capture_output=True, timeout=120)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nmax_connections = 200\n"
            )

    def start(self) -> None:
        self._pg_ctl("-l", str(self.root / "server.log"), "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are disconnected, their open transactions rolled back."""
        self._pg_ctl("-m", "fast", "stop")

    def new_database(self) -> str:
        """An empty database of its own; its SQLAlchemy URL."""
        name = f"faults_{uuid.uuid4().hex[:10]}"
        subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
             f"CREATE DATABASE {name}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="package")
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql to run this fault test")
    root = Path(tempfile.mkdtemp(prefix="replate-faults-pg-"))  # not under pytest's 0700 folder: `postgres` enters it
    cluster = PrivatePostgres(bin_dir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
        with suppress(subprocess.CalledProcessError):  # a test may have left it stopped
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def fault_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """One tritonserver for the fault tests that do not kill it."""
    with TritonServer(tmp_path_factory.mktemp("triton"), Settings().models_dir) as server:
        yield server


# Gateway processes


@dataclass
class Deployment:
    """What one fault test runs against: a migrated database, an account key, the gateway's environment."""

    env: dict[str, str]
    key: str
    credits: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def another_account(self, credits: int) -> Deployment:
        """A second account on the same database, for a test that must tell two kinds of load apart."""
        config = Settings(
            data_dir=Path(self.env["REPLATE_DATA_DIR"]),
            database_url=self.env["REPLATE_DATABASE_URL"],
            api_key_secret=self.env["REPLATE_API_KEY_SECRET"],
            triton_url="x",
        )
        key = asyncio.run(create_key(config, f"faults-{uuid.uuid4().hex[:8]}", credits))
        return Deployment(env=self.env, key=key, credits=credits)


def deploy(data_dir: Path, triton_url: str, database_url: str = "", credits: int = 1000, **settings: str) -> Deployment:
    """Migrate the database, create an account with `credits`, and the environment `replate gateway` and
    `replate credits audit` run with (`settings`: more REPLATE_* values, by field name)."""
    env = {
        **os.environ,
        "REPLATE_DATA_DIR": str(data_dir),
        "REPLATE_TRITON_URL": triton_url,
        "REPLATE_DATABASE_URL": database_url,
        "REPLATE_API_KEY_SECRET": uuid.uuid4().hex,
        "REPLATE_LOG_FORMAT": "text",
        **{f"REPLATE_{name.upper()}": value for name, value in settings.items()},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    config = Settings(
        data_dir=data_dir, database_url=database_url, api_key_secret=env["REPLATE_API_KEY_SECRET"], triton_url="x"
    )
    upgrade_database(config.database_url)
    key = asyncio.run(create_key(config, f"faults-{uuid.uuid4().hex[:8]}", credits))
    return Deployment(env=env, key=key, credits=credits)


class GatewayProcess:
    """`replate gateway` (the containers' entry point) on free ports; its output is collected as it comes."""

    def __init__(
        self,
        deployment: Deployment,
        name: str = "gateway",
        before_exec: Callable[[], None] | None = None,
        **settings: str,
    ) -> None:
        """`before_exec` runs in the child before the gateway starts (to set a resource limit)."""
        self.name = name
        self.port = free_port()
        self.grpc_port = free_port()
        env = {
            **deployment.env,
            "REPLATE_HTTP_PORT": str(self.port),
            "REPLATE_GRPC_PORT": str(self.grpc_port),
            **{f"REPLATE_{key.upper()}": value for key, value in settings.items()},
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "replate.cli", "gateway"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=before_exec,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} was not ready after {timeout_s} s:\n{self.output}")

    def send_sigterm(self) -> None:
        """What an orchestrator does to stop it; a gateway that already exited is left alone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM (again: a second one changes nothing), then wait for the exit; returns the exit code."""
        self.send_sigterm()
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(f"{self.name} did not exit {timeout_s} s after SIGTERM:\n{self.output}") from None
        self._close()
        return code

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._kill()


def credits_of(url: str, deployment: Deployment) -> dict[str, int]:
    return httpx.get(f"{url}/v1/credits", headers=deployment.headers, timeout=30).json()


def credits_after(deployment: Deployment, charged: int) -> dict[str, int]:
    """/v1/credits of an account that has been charged `charged` and holds nothing."""
    balance = deployment.credits - charged
    return {"balance": balance, "held": 0, "available": balance}


def final_prediction(url: str, deployment: Deployment, prediction_id: str, timeout_s: float = 60) -> dict:
    """Poll a prediction until it is no longer queued or processing; its last view."""

    def finished() -> dict | None:
        view = httpx.get(f"{url}/v1/predictions/{prediction_id}", headers=deployment.headers, timeout=30).json()
        return None if view["status"] in ("starting", "processing") else view

    return wait_until(finished, timeout_s, f"prediction {prediction_id} to finish", interval_s=0.2)


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `condition` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
