"""Start and stop the real `tritonserver` binary shipped in the `nvidia-pytriton` wheel (CPU, Python backend).

The wheel's Python backend is used in place: a per-run backend folder holds *symlinks* to the backend library,
its utils module and the stub for this interpreter (symlinks keep the bundled libraries' relative search paths;
copies would not find libcudart and hang in loading). The stub imports our packages through the `python3` first
on PATH, so the running interpreter's bin folder goes first; it also needs libpython on LD_LIBRARY_PATH.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"
CPU_HOST_FLAGS = (
    "--disable-auto-complete-config",
    "--allow-gpu-metrics=false",
    "--pinned-memory-pool-byte-size=0",
    "--cuda-memory-pool-byte-size=0:0",
    "--exit-timeout-secs=5",
    "--strict-readiness=true",
)


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready in time; the message carries its log tail."""


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def pick_free(cls) -> TritonPorts:
        """Free ports chosen by the kernel, so that two instances on one machine never collide."""
        sockets = [socket.socket() for _ in range(3)]
        try:
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            http, grpc, metrics = (sock.getsockname()[1] for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()
        return cls(http=http, grpc=grpc, metrics=metrics)


def pytriton_root() -> Path:
    import pytriton  # imported here: only needed when we start a server ourselves

    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def link_python_backend(backend_root: Path) -> Path:
    """Make `<backend_root>/python/` with symlinks to the wheel's Python backend; returns backend_root."""
    root = pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    sources = {
        "libtriton_python.so": root / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": root / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": root / "python_backend_stubs" / version / "triton_python_backend_stub",
    }
    python_dir = backend_root / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        if not source.exists():
            raise TritonStartError(f"nvidia-pytriton has no {source.name} for Python {version}")
        link = python_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return backend_root


def server_environment(models_dir: Path, segmenter: tuple[str, str] | None = None) -> dict[str, str]:
    """This process's environment for tritonserver. segmenter: (weights, format) of Settings.segmenter, read by
    model_repository/matting_segmenter (which file) and matting (how to prepare its inputs); None keeps whatever
    REPLATE_SEGMENTER / REPLATE_SEGMENTER_FORMAT this process has (u2netp when unset)."""
    env = dict(os.environ)
    env["REPLATE_MODELS_DIR"] = str(models_dir)
    if segmenter is not None:
        env["REPLATE_SEGMENTER"], env["REPLATE_SEGMENTER_FORMAT"] = segmenter
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    # Each model instance is its own process: one BLAS / OpenCV thread each keeps a small host from thrashing.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class TritonServer:
    """One tritonserver process serving `model_repositories` on free local ports."""

    def __init__(
        self,
        run_dir: Path,
        models_dir: Path,
        model_repositories: tuple[Path, ...] = (MODEL_REPOSITORY,),
        segmenter: tuple[str, str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.models_dir = models_dir
        self.model_repositories = model_repositories
        self.segmenter = segmenter
        self.ports = TritonPorts.pick_free()
        self.log_path = run_dir / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self) -> list[str]:
        backend_dir = link_python_backend(self.run_dir / "backends")
        return [
            str(pytriton_root() / "bin" / "tritonserver"),
            *(f"--model-repository={repo}" for repo in self.model_repositories),
            f"--backend-directory={backend_dir}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            *CPU_HOST_FLAGS,
        ]

    def start(self, ready_timeout_s: float = 120.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment(self.models_dir, self.segmenter),
            start_new_session=True,
        )
        log.close()
        self.wait_ready(ready_timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise TritonStartError(f"tritonserver exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.http_url}/v2/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TritonStartError(f"tritonserver was not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole process group (models included): a crash, for fault tests."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
