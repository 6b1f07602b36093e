"""Hostile images against the decoder entry points (replate.imageio.probe_image / decode_image, and the gateway's
image fields, gateway.images.read_image_field): each input is decoded within the limits or refused with a coded
4xx error, never another exception, within the per-input deadline; bombs are measured for memory in a fork each.

Pillow reports metadata it skips (a corrupt EXIF block) with a UserWarning and decodes on; a warning is not a
failure in production, so the property tests let Pillow's warnings pass (the suite makes every other one an error).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.errors import http_status
from gateway.fetch import FetchPolicy
from gateway.images import read_image_field
from replate.errors import ReplateError
from replate.imageio import ImageLimits, decode_image, probe_image
from tests.fuzz import hostile_images as hostile
from tests.fuzz.budget import fuzz_settings, tried
from tests.fuzz.hostile_images import PILLOW_WARNINGS
from tests.unit.replate.synthetic import png_with_claimed_size

LIMITS = ImageLimits(max_megapixels=1.0, max_bytes=2 * 1024 * 1024)
"""Small limits: a mutated header may claim up to this many pixels, and the decoder then allocates them."""
MAGIC_PREFIXES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF\0\0\0\0WEBP", b"")


def assert_refusal(error: ReplateError) -> None:
    """A refusal the client can act on: a public code with a 4xx status and a message."""
    assert 400 <= http_status(error) < 500, (error.code, error.message)
    assert error.message


def assert_decoded_or_refused(data: bytes, limits: ImageLimits = LIMITS) -> None:
    try:
        info = probe_image(data, limits)
    except ReplateError as error:
        assert_refusal(error)
        with pytest.raises(ReplateError):  # what the header check refuses, the decoder refuses too
            decode_image(data, limits)
        return
    assert info.width * info.height <= limits.max_megapixels * 1e6
    try:
        decoded = decode_image(data, limits)
    except ReplateError as error:  # a header that passes can still front corrupt data
        assert_refusal(error)
        return
    height, width = decoded.rgb.shape[:2]
    assert (width, height) == (info.width, info.height) and decoded.rgb.shape[2] == 3
    assert decoded.alpha is None or decoded.alpha.shape == (height, width)


@PILLOW_WARNINGS
@fuzz_settings(ci_examples=150)
@given(hostile.encoded_images())
def test_built_images_decode_or_are_refused(data: bytes) -> None:
    tried("decoder: built images (JPEG/PNG/WebP/GIF/TIFF/BMP, all modes, EXIF, frames)")
    assert_decoded_or_refused(data)


@PILLOW_WARNINGS
@fuzz_settings(ci_examples=500)
@given(hostile.mutated(hostile.encoded_images()))
def test_mutated_images_decode_or_are_refused(data: bytes) -> None:
    tried("decoder: mutated images (truncated, bytes flipped/inserted/deleted, declared size patched)")
    assert_decoded_or_refused(data)


@PILLOW_WARNINGS
@fuzz_settings(ci_examples=200)
@given(st.sampled_from(MAGIC_PREFIXES), st.binary(max_size=512))
@example(b"\xff\xd8\xff", b"\xff" * 256)  # fill bytes to the end: the marker walk must stop at the end
@example(b"\xff\xd8\xff", b"\xe0\x00\x00" * 64)  # zero-length segments: the walk must still advance
def test_magic_bytes_then_noise_are_refused(magic: bytes, noise: bytes) -> None:
    tried("decoder: format magic followed by random bytes")
    assert_decoded_or_refused(magic + noise)


def _image_field_values() -> st.SearchStrategy[str]:
    """What a client may put in an image field: data URLs and bare base64 of hostile files, broken base64, odd
    prefixes and whitespace."""
    files = st.one_of(hostile.encoded_images(), hostile.mutated(hostile.encoded_images()))
    encoded = files.map(lambda data: base64.b64encode(data).decode())
    prefixes = st.sampled_from(("", "data:image/png;base64,", "data:;base64,", "data:image/png,", "data:", " \n"))
    broken = st.text(alphabet="ABCDabcd0123+/=-_ \n\t\r:;,%\x00é", max_size=200)
    return st.builds(lambda prefix, body: prefix + body, prefixes, st.one_of(encoded, broken))


@PILLOW_WARNINGS
@fuzz_settings(ci_examples=200)
@given(_image_field_values())
async def test_image_fields_are_read_or_refused(value: str) -> None:
    tried("gateway image field (data URL / base64 -> probe)")
    try:
        image = await read_image_field(value, "image", LIMITS, FetchPolicy(LIMITS.max_bytes))
    except ReplateError as error:
        assert_refusal(error)
        return
    assert image.info.width * image.info.height <= LIMITS.max_megapixels * 1e6


@pytest.mark.parametrize("name", sorted(hostile.MALFORMED_EXIF))
@PILLOW_WARNINGS
def test_malformed_exif_is_ignored(name: str) -> None:
    """Broken metadata says nothing about the pixels: the image decodes, unrotated."""
    decoded = decode_image(hostile.jpeg_with_exif(hostile.MALFORMED_EXIF[name]), LIMITS)
    assert decoded.rgb.shape == (8, 8, 3)


BOMB_LIMIT_MEGAPIXELS = 4.0
SIDE = int((BOMB_LIMIT_MEGAPIXELS * 1e6) ** 0.5)
AT_THE_LIMIT = f"decoded {SIDE}x{SIDE}"
BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "PNG IDAT inflating to 1 GiB": (lambda: hostile.png_zip_bomb(1024), "decoded 64x64"),
    "PNG zTXt and iCCP inflating to 1 GiB": (lambda: hostile.png_text_bomb(1024), "image_corrupt"),
    "PNG declaring 65535x65535": (lambda: png_with_claimed_size(65535, 65535), "image_too_large"),
    "PNG one pixel row over the limit": (lambda: hostile.png_at_the_limit(SIDE, SIDE + 1, 2, 8), "image_too_large"),
    "APNG frame larger than the image": (lambda: hostile.apng_frame_bomb(100_000), "image_corrupt"),
    "GIF frames of 65535x65535": (lambda: hostile.gif_frame_bomb(10_000), "image_too_large"),
    "GIF of 100000 frames": (lambda: hostile.gif_of_many_frames(100_000), "decoded 1x1"),
    "WebP animation on a canvas at the limit": (lambda: hostile.animated_webp_bomb(SIDE, SIDE, 50), AT_THE_LIMIT),
    "WebP animation on a 16384x16384 canvas": (lambda: hostile.animated_webp_bomb(16384, 16384, 2), "image_too_large"),
    "CMYK progressive JPEG declaring the limit": (
        lambda: hostile.jpeg_declaring(SIDE, SIDE, "CMYK", progressive=True),
        AT_THE_LIMIT,
    ),
    **{
        f"PNG at the limit, colour type {color_type}, {bit_depth}-bit": (
            lambda color_type=color_type, bit_depth=bit_depth: hostile.png_at_the_limit(
                SIDE, SIDE, color_type, bit_depth
            ),
            AT_THE_LIMIT,
        )
        for color_type, bit_depth in hostile.PNG_BYTES_PER_PIXEL
    },
}
"""name -> (build the file, the outcome expected under a limit of BOMB_LIMIT_MEGAPIXELS)."""
PEAK_BYTES_PER_PIXEL = 14
"""Measured worst case at 25 MP: a 1-bit palette PNG with transparency, 12.3 bytes per pixel (Pillow's image, its
RGBA conversion, the array, split into RGB and alpha); 16-bit grey took 18 before it stayed in 16 bits."""
ANIMATED_WEBP_PEAK_BYTES_PER_PIXEL = 20
"""17-18 bytes per pixel of the canvas: libwebp's animation decoder holds two canvases of its own."""
PEAK_OVERHEAD_MIB = 8
BOMB_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def bomb_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Each bomb decoded in a fork of one child process: {name: report, with the file's size and expected outcome}."""
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for index, (name, (build, _)) in enumerate(BOMBS.items()):
        paths[name] = folder / f"bomb-{index}"
        paths[name].write_bytes(build())
    command = [sys.executable, "-m", "tests.fuzz.decode_peak", str(BOMB_LIMIT_MEGAPIXELS), str(BOMB_TIMEOUT_S)]
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([*command, *map(str, paths.values())], capture_output=True, text=True, cwd=root, timeout=300)
    assert run.returncode == 0, run.stderr
    by_file = {Path(report["name"]).name: report for report in map(json.loads, run.stdout.splitlines())}
    return {
        name: by_file[path.name] | {"expected": BOMBS[name][1], "size": path.stat().st_size}
        for name, path in paths.items()
    }


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_or_decoded_in_bounded_memory_and_time(name: str, bomb_reports) -> None:
    tried("decoder: bombs (memory and time measured in a fork)")
    report = bomb_reports[name]
    assert report["size"] < 4 * 1024 * 1024
    assert report["outcome"] == report["expected"]
    assert report["seconds"] < BOMB_TIMEOUT_S
    bytes_per_pixel = ANIMATED_WEBP_PEAK_BYTES_PER_PIXEL if name.startswith("WebP animation") else PEAK_BYTES_PER_PIXEL
    peak_bound_mib = bytes_per_pixel * BOMB_LIMIT_MEGAPIXELS * 1e6 / 2**20 + PEAK_OVERHEAD_MIB
    assert report["peak_mib"] < peak_bound_mib, report
