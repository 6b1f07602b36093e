"""Bytes <-> pixels: the only module of replate that touches Pillow images.

Inputs are JPEG, PNG (1/2/4/8/16-bit, palette, grayscale, with or without alpha), WebP and GIF (first frame).
Every decode runs the same checks first, from the file header alone and before any pixel is decoded:

1. the format is sniffed from magic bytes (anything else is `ImageFormatUnsupported`);
2. the byte size and the pixel count are compared with `ImageLimits` (`ImageTooLarge`); the pixel count is
   read by our own header parser, because some decoders (libwebp's animation decoder) allocate the canvas as
   soon as Pillow opens the file;
3. Pillow's plugin class for that one format is constructed directly, not through `Image.open`, so Pillow's
   process-wide decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) never fires: our limit is the one that applies,
   and no global Pillow state is changed.

Truncated or corrupt data raises `ImageCorrupt` (`ImageFile.LOAD_TRUNCATED_IMAGES` is left False). EXIF
orientation is applied to the pixels, so callers see the displayed image; encoders never write EXIF.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from replate.errors import ImageCorrupt, ImageFormatUnsupported, ImageTooLarge, InvalidRequest

__all__ = [
    "OUTPUT_FORMATS",
    "DecodedImage",
    "ImageInfo",
    "ImageLimits",
    "content_type",
    "decode_image",
    "encode_image",
    "probe_image",
]

OUTPUT_FORMATS = ("png", "jpeg", "webp")

_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_PLUGINS: dict[str, type[ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "gif": GifImagePlugin.GifImageFile,
}
# Names for formats we recognise but refuse, so the message can say what was sent.
_KNOWN_OTHER_FORMATS = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
)
_EXIF_ORIENTATION_TAG = 0x0112
_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_PNG_PARAMETERS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
_SUPPORTED_TEXT = "send a JPEG, PNG, WebP or GIF image"


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on an input image: decoded pixel count and encoded size."""

    max_megapixels: float = 25.0
    max_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class ImageInfo:
    """What the header says. `width`/`height` are the displayed size, after EXIF orientation."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class DecodedImage:
    """Decoded pixels with EXIF orientation applied.

    rgb: uint8 (H, W, 3) RGB in [0, 255].
    alpha: uint8 (H, W) in [0, 255] (255 = opaque) if the file had an alpha channel or transparency, else None.
    format: "jpeg" | "png" | "webp" | "gif".
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str


def probe_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Format and displayed size of an encoded image, read from its header; never decodes pixels.

    Raises ImageFormatUnsupported, ImageTooLarge or ImageCorrupt.
    """
    fmt, image = _open_checked(data, limits)
    width, height = image.size
    if _orientation(image) >= 5:  # 5-8 swap the axes
        width, height = height, width
    return ImageInfo(format=fmt, width=width, height=height)


def decode_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode an image after the header checks of `probe_image`; see DecodedImage for the arrays."""
    fmt, image = _open_checked(data, limits)
    orientation = _orientation(image)
    try:
        image.load()
        rgb, alpha = _to_arrays(image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"a frame of this {fmt.upper()} is too large to decode: resize it before upload") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise ImageCorrupt(
            f"the {fmt.upper()} data is truncated or corrupt ({exc}): re-export the image and upload it again"
        ) from exc
    rgb = _apply_orientation(rgb, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    return DecodedImage(rgb=rgb, alpha=alpha, format=fmt)


def encode_image(pixels: np.ndarray, fmt: str, *, quality: int = 95) -> bytes:
    """Encode pixels without any EXIF or orientation tag.

    pixels: uint8 (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) gray, in [0, 255].
    fmt: one of OUTPUT_FORMATS; PNG is lossless, WebP keeps alpha, JPEG cannot hold alpha (InvalidRequest).
    quality: 1-100, used by JPEG and WebP.
    """
    if fmt not in OUTPUT_FORMATS:
        raise InvalidRequest(f"output_format {fmt!r} is not supported: use one of {', '.join(OUTPUT_FORMATS)}")
    _check_pixels(pixels)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if fmt == "jpeg" and pixels.ndim == 3 and pixels.shape[2] == 4:
        raise InvalidRequest("output_format jpeg cannot store transparency: use png or webp for a cutout")
    if fmt == "png":
        return _encode_png(pixels)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="WEBP", quality=quality, method=2)
    return buffer.getvalue()


def _encode_png(pixels: np.ndarray) -> bytes:
    """Lossless PNG through OpenCV's libpng: zlib level 1 with the run-length strategy. Measured on 1.05 MP
    outputs against Pillow at level 2: a studio composite 46 ms / 1342 KiB against 90 ms / 1660 KiB, a photo RGBA
    cutout 59 ms / 1301 KiB against 81 ms / 1474 KiB (benchmarks/bench_pixels.py runs the encoders)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    order = {1: None, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[channels]
    native = np.ascontiguousarray(pixels) if order is None else cv2.cvtColor(pixels, order)
    ok, encoded = cv2.imencode(".png", native, _PNG_PARAMETERS)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.shape} image as PNG")
    return encoded.tobytes()


def content_type(fmt: str) -> str:
    """MIME type of a format name ("png" -> "image/png")."""
    try:
        return _CONTENT_TYPES[fmt]
    except KeyError:
        raise InvalidRequest(f"format {fmt!r} is not supported: use one of {', '.join(OUTPUT_FORMATS)}") from None


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    is_gray = pixels.ndim == 2
    is_color = pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    if not (is_gray or is_color) or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"pixels must be (H, W), (H, W, 3) or (H, W, 4), got shape {pixels.shape}")


def _open_checked(data: bytes, limits: ImageLimits) -> tuple[str, ImageFile.ImageFile]:
    """Sniff, check the limits from the header, then open (header only) with the one matching Pillow plugin."""
    fmt = _sniff_format(data)
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"image is {len(data) / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB: "
            "compress or resize it before upload"
        )
    _check_pixel_count(_header_size(fmt, data), limits)
    try:
        image = _PLUGINS[fmt](io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"a frame of this {fmt.upper()} is too large to decode: resize it before upload") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise ImageCorrupt(f"the {fmt.upper()} header is corrupt ({exc}): re-export the image") from exc
    _check_pixel_count(image.size, limits)  # a GIF frame may extend the logical screen
    return fmt, image


def _sniff_format(data: bytes) -> str:
    if not data:
        raise ImageFormatUnsupported(f"the image is empty (0 bytes): {_SUPPORTED_TEXT}")
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(PngImagePlugin._MAGIC):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, name in _KNOWN_OTHER_FORMATS:
        if data.startswith(magic):
            raise ImageFormatUnsupported(f"{name} images are not supported: {_SUPPORTED_TEXT}")
    raise ImageFormatUnsupported(f"the data is not a recognised image: {_SUPPORTED_TEXT}")


def _check_pixel_count(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    megapixels = width * height / 1e6
    if megapixels > limits.max_megapixels:
        raise ImageTooLarge(
            f"image is {megapixels:.1f} MP ({width}x{height}); the limit is {limits.max_megapixels:g} MP: "
            "resize it before upload"
        )
    if width <= 0 or height <= 0:
        raise ImageCorrupt(f"the header gives an empty size ({width}x{height}): re-export the image")


def _header_size(fmt: str, data: bytes) -> tuple[int, int]:
    """(width, height) as stored (before EXIF orientation), parsed from the header without Pillow."""
    try:
        if fmt == "png":
            if data[12:16] != b"IHDR":
                raise ValueError("no IHDR chunk")
            return struct.unpack(">II", data[16:24])
        if fmt == "gif":
            return struct.unpack("<HH", data[6:10])
        if fmt == "webp":
            return _webp_size(data)
        return _jpeg_size(data)
    except (struct.error, ValueError, IndexError) as exc:
        raise ImageCorrupt(f"the {fmt.upper()} header is truncated or corrupt ({exc}): re-export the image") from exc


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise ValueError(f"unknown WebP chunk {chunk!r}")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers up to the first start-of-frame segment."""
    pos = 2
    while True:
        while data[pos] != 0xFF:  # tolerate garbage between segments, as libjpeg does
            pos += 1
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("image data before any frame header")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if marker in _JPEG_SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
        pos += length


def _orientation(image: Image.Image) -> int:
    """EXIF orientation 1-8 from the metadata Pillow read with the header; 1 when absent or unreadable."""
    exif_bytes = image.info.get("exif")
    if not exif_bytes:
        return 1
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
        value = exif.get(_EXIF_ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error):
        return 1  # broken metadata is common in the wild and says nothing about the pixels
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Same transforms as PIL.ImageOps.exif_transpose, on arrays: (H, W) or (H, W, C), any dtype."""
    if orientation == 2:
        pixels = pixels[:, ::-1]
    elif orientation == 3:
        pixels = pixels[::-1, ::-1]
    elif orientation == 4:
        pixels = pixels[::-1]
    elif orientation == 5:
        pixels = pixels.swapaxes(0, 1)
    elif orientation == 6:
        pixels = np.rot90(pixels, k=-1)
    elif orientation == 7:
        pixels = np.rot90(pixels, k=2).swapaxes(0, 1)
    elif orientation == 8:
        pixels = np.rot90(pixels, k=1)
    return np.ascontiguousarray(pixels)


def _to_arrays(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Loaded Pillow image -> (rgb uint8 (H, W, 3), alpha uint8 (H, W) or None)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _gray16_to_arrays(image)
    has_alpha = "A" in image.mode or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(_converted(image, "RGBA"))
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    return np.asarray(_converted(image, "RGB")), None


def _converted(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode`; not copied when it already is (a 25 MP copy is 100 MB)."""
    return image if image.mode == mode else image.convert(mode)


def _gray16_to_arrays(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    # Pillow's I;16 -> L/RGB conversion clips at 255 instead of scaling, so scale the 16-bit values here.
    # Kept in 16 bits: a 25 MP image in int64 would take 200 MB per temporary.
    values = np.asarray(image)
    if values.dtype != np.uint16:  # mode I holds 32-bit signed values
        values = values.clip(0, 65535).astype(np.uint16)
    gray = (values >> 8).astype(np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    transparent_value = image.info.get("transparency")
    if not isinstance(transparent_value, int):
        return rgb, None
    alpha = np.where(values == transparent_value, 0, 255).astype(np.uint8)
    return rgb, alpha
