from __future__ import annotations

import io
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from replate import imageio
from replate.errors import ImageCorrupt, ImageFormatUnsupported, ImageTooLarge, InvalidRequest
from replate.imageio import ImageLimits, content_type, decode_image, encode_image, probe_image
from tests.unit.replate.synthetic import encode_with_pillow, gradient_rgb, png_with_claimed_size

LIMITS = ImageLimits()


def _with_orientation(rgb: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode_with_pillow(Image.fromarray(rgb), fmt, exif=exif.tobytes())


def test_public_surface() -> None:
    assert set(imageio.__all__) == {
        "OUTPUT_FORMATS",
        "DecodedImage",
        "ImageInfo",
        "ImageLimits",
        "content_type",
        "decode_image",
        "encode_image",
        "probe_image",
    }


@pytest.mark.parametrize(("fmt", "pillow_format", "tolerance"), [("png", "PNG", 0), ("jpeg", "JPEG", 6)])
def test_decodes_rgb_formats(fmt: str, pillow_format: str, tolerance: int) -> None:
    rgb = gradient_rgb(48, 32)
    decoded = decode_image(encode_with_pillow(Image.fromarray(rgb), pillow_format, quality=95), LIMITS)
    assert decoded.format == fmt
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (32, 48, 3)
    assert decoded.alpha is None
    assert np.abs(decoded.rgb.astype(int) - rgb).mean() <= tolerance


def test_decodes_lossless_webp_with_alpha() -> None:
    rgba = np.dstack([gradient_rgb(40, 30), np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))])
    decoded = decode_image(encode_with_pillow(Image.fromarray(rgba), "WEBP", lossless=True, exact=True), LIMITS)
    assert decoded.format == "webp"
    np.testing.assert_array_equal(decoded.rgb, rgba[:, :, :3])
    np.testing.assert_array_equal(decoded.alpha, rgba[:, :, 3])


def test_16_bit_png_is_scaled_not_clipped() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    values[0, 0] = (65535, 256, 255)  # 255 would clip to 255; scaled it is 0
    ok, png = cv2.imencode(".png", values[:, :, ::-1])
    assert ok
    decoded = decode_image(png.tobytes(), LIMITS)
    np.testing.assert_array_equal(decoded.rgb, (values >> 8).astype(np.uint8))
    assert tuple(decoded.rgb[0, 0]) == (255, 1, 0)


def test_16_bit_grayscale_png_is_scaled() -> None:
    gray = np.linspace(0, 65535, 24 * 16).astype(np.uint16).reshape(16, 24)
    ok, png = cv2.imencode(".png", gray)
    assert ok
    decoded = decode_image(png.tobytes(), LIMITS)
    expected = (gray >> 8).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[:, :, channel], expected)
    assert decoded.rgb.max() == 255 and decoded.rgb.min() == 0


def test_16_bit_rgba_png_keeps_alpha() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 65536, (10, 12, 4), dtype=np.uint16)
    ok, png = cv2.imencode(".png", values[:, :, [2, 1, 0, 3]])
    assert ok
    decoded = decode_image(png.tobytes(), LIMITS)
    np.testing.assert_array_equal(decoded.rgb, (values[:, :, :3] >> 8).astype(np.uint8))
    np.testing.assert_array_equal(decoded.alpha, (values[:, :, 3] >> 8).astype(np.uint8))


def test_palette_png_with_trns_gives_alpha() -> None:
    indices = np.tile(np.arange(4, dtype=np.uint8), (6, 2))  # (6, 8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
    data = encode_with_pillow(image, "PNG", transparency=bytes([255, 0, 128, 255]))
    decoded = decode_image(data, LIMITS)
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha[0, :4], [255, 0, 128, 255])
    np.testing.assert_array_equal(decoded.rgb[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(decoded.rgb[0, 2], [0, 0, 255])


def test_grayscale_png_without_and_with_alpha() -> None:
    gray = np.arange(0, 240, 2, dtype=np.uint8).reshape(8, 15)
    plain = decode_image(encode_with_pillow(Image.fromarray(gray), "PNG"), LIMITS)
    assert plain.alpha is None
    np.testing.assert_array_equal(plain.rgb, np.repeat(gray[:, :, None], 3, axis=2))

    alpha = 255 - gray
    with_alpha = decode_image(encode_with_pillow(Image.fromarray(np.dstack([gray, alpha]), mode="LA"), "PNG"), LIMITS)
    np.testing.assert_array_equal(with_alpha.rgb[:, :, 1], gray)
    np.testing.assert_array_equal(with_alpha.alpha, alpha)


def test_grayscale_png_with_transparent_value() -> None:
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    decoded = decode_image(encode_with_pillow(Image.fromarray(gray), "PNG", transparency=7), LIMITS)
    assert decoded.alpha is not None
    assert (decoded.alpha == 0).sum() == 1 and decoded.alpha[1, 2] == 0


def test_gif_decodes_the_first_frame() -> None:
    red = Image.new("RGB", (16, 12), (255, 0, 0))
    blue = Image.new("RGB", (16, 12), (0, 0, 255))
    data = encode_with_pillow(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    decoded = decode_image(data, LIMITS)
    assert decoded.format == "gif"
    assert decoded.rgb.shape == (12, 16, 3)
    assert (decoded.rgb == [255, 0, 0]).all()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation: int) -> None:
    data = _with_orientation(gradient_rgb(40, 24), orientation, "PNG")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    decoded = decode_image(data, LIMITS)
    np.testing.assert_array_equal(decoded.rgb, expected)
    info = probe_image(data, LIMITS)
    assert (info.height, info.width) == expected.shape[:2]


@pytest.mark.parametrize(("orientation", "top_left_source"), [(6, "bottom-left"), (8, "top-right")])
def test_exif_rotation_of_jpeg_changes_shape_and_placement(orientation: int, top_left_source: str) -> None:
    rgb = np.zeros((24, 40, 3), dtype=np.uint8)
    rgb[:8, :8] = (255, 0, 0)  # red at the stored top-left
    rgb[-8:, :8] = (0, 255, 0)  # green at the stored bottom-left
    rgb[:8, -8:] = (0, 0, 255)  # blue at the stored top-right
    decoded = decode_image(_with_orientation(rgb, orientation, "JPEG"), LIMITS)
    assert decoded.rgb.shape == (40, 24, 3)
    corner = decoded.rgb[2:6, 2:6].reshape(-1, 3).mean(axis=0)
    expected = {"bottom-left": (0, 255, 0), "top-right": (0, 0, 255)}[top_left_source]
    assert np.abs(corner - expected).max() < 30
    assert probe_image(_with_orientation(rgb, orientation, "JPEG"), LIMITS) == imageio.ImageInfo("jpeg", 24, 40)


def test_encoded_output_has_no_orientation_tag_and_keeps_displayed_size() -> None:
    decoded = decode_image(_with_orientation(gradient_rgb(40, 24), 6, "JPEG"), LIMITS)
    for fmt in imageio.OUTPUT_FORMATS:
        reopened = Image.open(io.BytesIO(encode_image(decoded.rgb, fmt)))
        assert reopened.size == (24, 40)
        assert 0x0112 not in reopened.getexif()


@pytest.mark.parametrize("pillow_format", ["JPEG", "PNG"])
def test_truncated_files_are_corrupt(pillow_format: str) -> None:
    rng = np.random.default_rng(2)
    noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode_with_pillow(Image.fromarray(noisy), pillow_format)
    with pytest.raises(ImageCorrupt, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], LIMITS)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_header_cut_short_is_corrupt() -> None:
    data = encode_with_pillow(Image.new("RGB", (8, 8)), "PNG")
    with pytest.raises(ImageCorrupt):
        probe_image(data[:20], LIMITS)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"", "empty"),
        (b"hello, this is plain text and not an image", "not a recognised image"),
        (encode_with_pillow(Image.new("RGB", (4, 4)), "BMP"), "BMP"),
        (encode_with_pillow(Image.new("RGB", (4, 4)), "TIFF"), "TIFF"),
        (b"%PDF-1.7\n...", "PDF"),
    ],
)
def test_other_formats_are_unsupported(data: bytes, named: str) -> None:
    with pytest.raises(ImageFormatUnsupported, match=named):
        decode_image(data, LIMITS)


def test_decompression_bomb_header_is_refused_without_allocating() -> None:
    bomb = png_with_claimed_size(30000, 30000)
    assert len(bomb) < 200
    pillow_limit = Image.MAX_IMAGE_PIXELS
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLarge, match=r"900\.0 MP .*limit is 25 MP"):
            probe_image(bomb, LIMITS)
        with pytest.raises(ImageTooLarge):
            decode_image(bomb, LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert pillow_limit == Image.MAX_IMAGE_PIXELS  # Pillow's process-wide setting is left alone


def test_large_gif_and_webp_headers_are_refused() -> None:
    gif = b"GIF89a" + (30000).to_bytes(2, "little") * 2 + b"\x00" * 20
    vp8x = b"VP8X" + (10).to_bytes(4, "little") + b"\x00" * 4 + (29999).to_bytes(3, "little") * 2
    webp = b"RIFF" + (len(vp8x) + 4).to_bytes(4, "little") + b"WEBP" + vp8x
    for data in (gif, webp):
        with pytest.raises(ImageTooLarge):
            probe_image(data, LIMITS)


def test_megapixel_limit_applies_above_pillows_own_limit() -> None:
    # 100 MP would make Pillow warn (an error under this test suite) if its own check were used.
    with pytest.raises(ImageTooLarge, match="limit is 500 MP"):
        probe_image(png_with_claimed_size(30000, 30000), ImageLimits(max_megapixels=500))


def test_pixel_and_byte_limits() -> None:
    data = encode_with_pillow(Image.fromarray(gradient_rgb(100, 50)), "PNG")
    assert probe_image(data, LIMITS) == imageio.ImageInfo("png", 100, 50)
    with pytest.raises(ImageTooLarge, match="MP"):
        decode_image(data, ImageLimits(max_megapixels=0.004))
    with pytest.raises(ImageTooLarge, match="MB"):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert decode_image(data, ImageLimits(max_megapixels=0.005, max_bytes=len(data))).rgb.shape == (50, 100, 3)


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_png_round_trip_is_lossless(channels: int | None) -> None:
    rng = np.random.default_rng(3)
    shape = (17, 23) if channels is None else (17, 23, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    decoded = decode_image(encode_image(pixels, "png"), LIMITS)
    if channels is None:
        np.testing.assert_array_equal(decoded.rgb[:, :, 0], pixels)
    else:
        np.testing.assert_array_equal(decoded.rgb, pixels[:, :, :3])
    if channels == 4:
        np.testing.assert_array_equal(decoded.alpha, pixels[:, :, 3])


def test_webp_keeps_alpha_and_jpeg_refuses_it() -> None:
    rgba = np.dstack([gradient_rgb(32, 32), np.full((32, 32), 255, dtype=np.uint8)])
    rgba[:, :16, 3] = 0
    decoded = decode_image(encode_image(rgba, "webp"), LIMITS)
    assert decoded.alpha is not None
    assert decoded.alpha[:, :12].max() < 10 and decoded.alpha[:, 20:].min() > 245
    with pytest.raises(InvalidRequest, match="transparency"):
        encode_image(rgba, "jpeg")


def test_jpeg_quality_is_used() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_image(rgb, "jpeg", quality=30)) < len(encode_image(rgb, "jpeg", quality=95))


def test_encode_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidRequest, match="output_format"):
        encode_image(np.zeros((4, 4, 3), np.uint8), "bmp")
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4, 3), np.float32), "png")
    with pytest.raises(ValueError, match="shape"):
        encode_image(np.zeros((4, 4, 2), np.uint8), "png")


def test_content_types() -> None:
    assert [content_type(fmt) for fmt in imageio.OUTPUT_FORMATS] == ["image/png", "image/jpeg", "image/webp"]
    assert content_type("gif") == "image/gif"
    with pytest.raises(InvalidRequest):
        content_type("tiff")
