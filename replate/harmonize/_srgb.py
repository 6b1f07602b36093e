"""sRGB levels to linear light, shared by the light and colour estimates."""

from __future__ import annotations

import functools

import numpy as np

_LUMINANCE_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """float32 (..., 3) linear sRGB in [0, 1] of uint8 (..., 3) sRGB."""
    return _linear_table()[rgb]


def linear_luminance(rgb: np.ndarray) -> np.ndarray:
    """float32 (...) relative luminance Y in [0, 1] of uint8 (..., 3) sRGB."""
    return srgb_to_linear(rgb) @ _LUMINANCE_WEIGHTS


@functools.cache
def _linear_table() -> np.ndarray:
    levels = np.arange(256, dtype=np.float64) / 255.0
    return np.where(levels <= 0.04045, levels / 12.92, ((levels + 0.055) / 1.055) ** 2.4).astype(np.float32)
