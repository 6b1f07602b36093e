"""Hostile image files for the decoder: hypothesis strategies that build real images in every mode the contract
names (and a few it refuses), then mutate them; and hand-made bombs, each small on the wire and huge if trusted."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image

# Pillow modes each format can write; CMYK JPEG, 16-bit and palette PNG, grayscale GIF are the odd ones.
MODES_BY_FORMAT = {
    "JPEG": ("L", "RGB", "CMYK"),
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("L", "P"),
    "TIFF": ("RGB", "CMYK"),  # refused by the decoder: it must say so
    "BMP": ("RGB",),
}
ANIMATED_FORMATS = ("PNG", "WEBP", "GIF")
EXIF_ORIENTATION = 0x0112
PILLOW_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
"""Pillow warns about metadata it skips (a corrupt EXIF block) and decodes on. Production lets a warning pass; the
suite makes every warning an error, so tests that feed these files anywhere let Pillow's pass."""


def _pixels(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (height, width), dtype=bool))
    bands = len(Image.new(mode, (1, 1)).getbands())
    array = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    if mode == "P":
        image = Image.fromarray(array[:, :, 0], "L").convert("P")
        image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return image
    return Image.frombytes(mode, (width, height), array.tobytes())


def exif_with_orientation(field_type: int, count: int, value: bytes) -> bytes:
    """An Exif block whose one IFD entry is the orientation tag, with any TIFF field type, count and 4-byte value
    (or offset): a valid 1-8 SHORT, an out-of-range number, a string, a pointer past the end."""
    entry = struct.pack("<HHI", EXIF_ORIENTATION, field_type, count) + value
    return b"Exif\0\0II*\0" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    """A real file: format, mode, size, pixels, EXIF orientation (valid, out of range or of the wrong type) and
    animation frames all drawn."""
    fmt = draw(st.sampled_from(sorted(MODES_BY_FORMAT)))
    mode = draw(st.sampled_from(MODES_BY_FORMAT[fmt]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    image = _pixels(mode, width, height, seed)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "PNG", "WEBP") and draw(st.booleans()):
        field_type = draw(st.sampled_from((3, 3, 3, 1, 2, 4, 5, 7, 9, 0, 99)))  # 3 = SHORT, the valid one
        count = draw(st.one_of(st.just(1), st.integers(0, 2**32 - 1)))
        value = draw(
            st.one_of(st.integers(0, 12).map(lambda n: struct.pack("<HH", n, 0)), st.binary(min_size=4, max_size=4))
        )
        options["exif"] = exif_with_orientation(field_type, count, value)
    if fmt == "JPEG":
        options["progressive"] = draw(st.booleans())
    if fmt == "PNG" and mode == "P" and draw(st.booleans()):
        options["transparency"] = draw(st.integers(0, 255))  # a tRNS chunk (Pillow cannot animate with one)
    elif fmt in ANIMATED_FORMATS and draw(st.booleans()):
        frame_count = draw(st.integers(2, 4))
        frames = [_pixels(mode, width, height, seed + index) for index in range(1, frame_count)]
        options.update(save_all=True, append_images=frames, duration=draw(st.integers(0, 1000)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@st.composite
def mutated(draw: st.DrawFn, files: st.SearchStrategy[bytes]) -> bytes:
    """A file from `files`, then one to three of: cut short, bytes overwritten, bytes inserted, bytes deleted,
    a declared size patched to a huge or zero value."""
    data = bytearray(draw(files))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("truncate", "overwrite", "insert", "delete", "size")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(patch)] = patch
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data = bytearray(with_declared_size(bytes(data), draw(st.sampled_from(HOSTILE_SIZES))))
    return bytes(data)


HOSTILE_SIZES = ((0, 0), (1, 0), (0xFFFF, 0xFFFF), (0x3FFF, 0x3FFF), (2**31 - 1, 1), (2**32 - 1, 2**32 - 1))


def with_declared_size(data: bytes, size: tuple[int, int]) -> bytes:
    """`data` with the width and height its header declares replaced (each clipped to the field's width); the
    pixels are left as they were. Files too short for a header come back unchanged."""
    width, height = size
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        ihdr = struct.pack(">II", width, height) + data[24:29]
        return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]
    if data[:3] == b"GIF" and len(data) >= 10:
        return data[:6] + struct.pack("<HH", width & 0xFFFF, height & 0xFFFF) + data[10:]
    if data[:4] == b"RIFF" and data[12:16] == b"VP8X" and len(data) >= 30:
        dims = ((width - 1) & 0xFFFFFF).to_bytes(3, "little") + ((height - 1) & 0xFFFFFF).to_bytes(3, "little")
        return data[:24] + dims + data[30:]
    if data[:4] == b"RIFF" and data[12:16] == b"VP8 " and len(data) >= 30:
        return data[:26] + struct.pack("<HH", width & 0x3FFF, height & 0x3FFF) + data[30:]
    sof = _jpeg_sof_offset(data)
    if sof is not None:
        return data[: sof + 5] + struct.pack(">HH", height & 0xFFFF, width & 0xFFFF) + data[sof + 9 :]
    return data


def _jpeg_sof_offset(data: bytes) -> int | None:
    """Offset of the first baseline/progressive start-of-frame marker of a JPEG, if there is one."""
    if not data.startswith(b"\xff\xd8"):
        return None
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at != -1 and at + 9 <= len(data):
            return at
    return None


# Bombs: each is a few kilobytes at most.


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def deflated_zeros(size_mib: int) -> bytes:
    """A zlib stream of `size_mib` MiB of zeros, about 1 kB per MiB: one deflated MiB ended by a full flush (so it
    refers to nothing before it) repeated, then the end block and the checksum."""
    mib = b"\0" * (1 << 20)
    compressor = zlib.compressobj(9)
    first = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    header, block = first[:2], first[2:]
    checksum = 1
    for _ in range(size_mib):
        checksum = zlib.adler32(mib, checksum)
    return header + block * size_mib + compressor.flush()[:-4] + struct.pack(">I", checksum)


def png(width: int, height: int, idat: bytes, *, color_type: int = 2, bit_depth: int = 8, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def png_zip_bomb(inflated_mib: int) -> bytes:
    """A 64x64 RGB PNG whose IDAT inflates to `inflated_mib` MiB of zeros: far more than its 64 rows need."""
    return png(64, 64, deflated_zeros(inflated_mib))


PNG_BYTES_PER_PIXEL = {(0, 16): 2, (2, 8): 3, (2, 16): 6, (3, 1): 1 / 8, (4, 16): 4, (6, 8): 4, (6, 16): 8}
"""(colour type, bit depth) -> bytes per pixel: 16-bit grey, RGB, 16-bit RGB, 1-bit palette, grey+alpha, RGBA."""


def png_at_the_limit(width: int, height: int, color_type: int, bit_depth: int) -> bytes:
    """A PNG of zeros exactly as large as it declares: a few kB on the wire for any size, the worst case a limit
    on the pixel count has to allow. A palette PNG gets a 2-entry palette with one transparent entry."""
    row_bytes = 1 + int(-(-width * PNG_BYTES_PER_PIXEL[(color_type, bit_depth)] // 1))
    extra = png_chunk(b"PLTE", b"\0\0\0\xff\xff\xff") + png_chunk(b"tRNS", b"\0") if color_type == 3 else b""
    idat = deflated_zeros(-(-height * row_bytes // (1 << 20)))
    return png(width, height, idat, color_type=color_type, bit_depth=bit_depth, extra=extra)


def png_text_bomb(inflated_mib: int) -> bytes:
    """A 1x1 PNG with a compressed text (zTXt) and a compressed ICC profile (iCCP) that inflate to GBs."""
    zeros = deflated_zeros(inflated_mib)
    extra = png_chunk(b"zTXt", b"Comment\0\0" + zeros) + png_chunk(b"iCCP", b"icc\0\0" + zeros)
    return png(1, 1, zlib.compress(b"\0\0\0\0"), extra=extra)


def apng_frame_bomb(frame_count: int) -> bytes:
    """An animated PNG whose first frame control claims a frame far larger than the image, then many frames."""
    control = struct.pack(">IIIIIHHBB", 0, 0xFFFF, 0xFFFF, 0, 0, 1, 1, 0, 0)
    actl = png_chunk(b"acTL", struct.pack(">II", frame_count, 0)) + png_chunk(b"fcTL", control)
    return png(8, 8, zlib.compress(b"\0" * (8 * 25)), extra=actl)


def gif_frame_bomb(frame_count: int) -> bytes:
    """A GIF with a 1x1 logical screen whose frames each claim 65535x65535 pixels."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 0xFFFF, 0xFFFF, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame * frame_count + b"\x3b"


def animated_webp_bomb(width: int, height: int, frame_count: int) -> bytes:
    """An animated WebP of tiny frames on a width x height canvas: libwebp's animation decoder allocates its
    canvases when the file is opened."""
    frames = [Image.new("RGB", (4, 4), (index, 0, 0)) for index in range(frame_count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    return with_declared_size(buffer.getvalue(), (width, height))


def gif_of_many_frames(frame_count: int) -> bytes:
    """A 1x1 GIF with `frame_count` frames: only the first may be decoded."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame * frame_count + b"\x3b"


def jpeg_declaring(width: int, height: int, mode: str, *, progressive: bool) -> bytes:
    """The scan data of a 64x64 JPEG under a frame header that declares width x height: libjpeg decodes what is
    there and fills the rest, so the full declared size is allocated."""
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, bands), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.frombytes(mode, (64, 64), pixels.tobytes()).save(buffer, format="JPEG", progressive=progressive)
    return with_declared_size(buffer.getvalue(), (width, height))


def jpeg_with_exif(exif_payload: bytes) -> bytes:
    """A small JPEG carrying `exif_payload` as its APP1 Exif segment (malformed on purpose)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    segment = b"Exif\0\0" + exif_payload
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


MALFORMED_EXIF = {
    "empty TIFF header": b"",
    "bad byte order": b"XX\x2a\x00\x08\x00\x00\x00",
    "IFD offset past the end": b"II\x2a\x00\xff\xff\xff\x7f",
    "IFD claims 65535 entries": b"II\x2a\x00\x08\x00\x00\x00\xff\xff",
    "orientation of type ASCII": b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x02\x00\x04\x00\x00\x00abc\x00",
    "orientation out of range": b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00",
    "IFD loop": b"II\x2a\x00\x08\x00\x00\x00\x00\x00\x08\x00\x00\x00",
    "value offset past the end": b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\xff\xff\x00\x00\x00\xff\x00\x00",
}
