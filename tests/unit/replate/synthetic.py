"""Synthetic inputs for the pixel-library unit tests: studio shots (from tests.synthetic) and encoded files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.synthetic import StudioShot, make_studio_shot, render_studio_shot

__all__ = [
    "StudioShot",
    "encode_with_pillow",
    "gradient_rgb",
    "make_studio_shot",
    "png_with_claimed_size",
    "render_studio_shot",
]


def gradient_rgb(width: int, height: int) -> np.ndarray:
    """uint8 (H, W, 3): R grows with x, G with y, B fixed; every pixel tells where it came from."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[:, :, 0] = np.rint(np.broadcast_to(x, (height, width)))
    rgb[:, :, 1] = np.rint(np.broadcast_to(y, (height, width)))
    rgb[:, :, 2] = 90
    return rgb


def encode_with_pillow(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_with_claimed_size(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose IHDR claims width x height (a decompression bomb's header)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
