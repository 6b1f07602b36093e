"""`replate replace` and `replate remove` as a user runs them (the installed command, a subprocess) against a real
gateway and Triton: a folder of 20 images through one injected 503, progress, 20 outputs, charged exactly once each."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from replate.imageio import ImageLimits, decode_image, encode_image
from tests.integration.conftest import GatewayThread
from tests.integration.faults import RefuseFirst, journal
from tests.synthetic import make_studio_shot

pytestmark = pytest.mark.slow
REPLATE = str(Path(sys.executable).parent / "replate")
IMAGES = 20
SIZE = (96, 72)


@pytest.fixture
def live_settings(settings: Settings, triton: TritonServer) -> Settings:
    return settings.model_copy(update={"triton_url": triton.grpc_url})


@pytest.fixture
def refusing_gateway(live_settings: Settings) -> Iterator[GatewayThread]:
    """The real gateway behind a 503 (Retry-After: 0) on its first replace-background request."""
    app = RefuseFirst(create_app(live_settings), path="/v1/image/replace-background", retry_after=0)
    with GatewayThread(live_settings, app=app) as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """IMAGES small studio shots, PNG and JPEG."""
    folder = tmp_path / "products"
    folder.mkdir()
    for index in range(IMAGES):
        rgb, _alpha = make_studio_shot(*SIZE, seed=index)
        fmt = "png" if index % 2 else "jpeg"
        (folder / f"sku-{index:02d}.{'png' if fmt == 'png' else 'jpg'}").write_bytes(encode_image(rgb, fmt))
    return folder


def replate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REPLATE, *args], capture_output=True, text=True, timeout=300)


async def test_a_folder_through_a_503_writes_every_output_and_charges_each_once(
    refusing_gateway: GatewayThread, live_settings: Settings, make_key, folder: Path, tmp_path: Path
) -> None:
    key = await make_key(1000)
    out = tmp_path / "out"
    run = replate(
        "replace", str(folder), "--color", "#f4efe6", "--out", str(out),
        "--server", refusing_gateway.url, "--key", key, "--concurrency", "4",
    )  # fmt: skip
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    refuser: RefuseFirst = refusing_gateway.app
    assert (refuser.refused, refuser.seen) == (1, IMAGES + 1), "one 503, retried once"
    outputs = sorted(out.iterdir())
    assert [path.name for path in outputs] == [f"{path.stem}.png" for path in sorted(folder.iterdir())]
    assert all(decode_image(path.read_bytes(), ImageLimits()).rgb.shape[:2] == SIZE[::-1] for path in outputs)
    assert "Replacing ━" in run.stdout and f"{IMAGES}/{IMAGES}" in run.stdout, "a progress bar"
    assert run.stdout.count("✓") == IMAGES and "(5 credits)" in run.stdout, "a status line per image"
    assert f"{IMAGES} of {IMAGES} succeeded" in run.stdout and f"{IMAGES * 5} credits charged, 900 left" in run.stdout
    assert await journal(live_settings, "capture") == [5] * IMAGES
    assert await journal(live_settings, "release") == []


async def test_failures_are_summed_up_and_the_exit_status_says_so(
    live_settings: Settings, make_key, folder: Path, tmp_path: Path
) -> None:
    key = await make_key(3)
    (folder / "sku-00.jpg").write_bytes(b"not an image")
    inputs = [str(folder / "sku-00.jpg"), str(folder / "sku-0[1-3].*")]
    with GatewayThread(live_settings) as gateway:
        run = replate("remove", *inputs, "--out", str(tmp_path / "out"), "--server", gateway.url, "--key", key)
    assert run.returncode == 1, run.stdout + run.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["sku-01.png", "sku-02.png", "sku-03.png"]
    assert "3 of 4 succeeded" in run.stdout and "3 credits charged, 0 left" in run.stdout
    assert "failed: " + str(folder / "sku-00.jpg") + ": image_format_unsupported" in run.stdout
