"""The matte value object, the engine protocol and the input check, shared by the engines and the package surface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from replate.errors import InvalidRequest

MIN_SIDE_PX = 32


@dataclass(frozen=True)
class Matte:
    """What a matting engine found in one image of size (H, W).

    alpha: uint8 (H, W), 255 = fully subject, 0 = fully backdrop.
    foreground: uint8 (H, W, 3) RGB subject colours with the backdrop removed; exactly the input where alpha == 255.
    shading: uint8 (H, W) cast-shadow layer of the old backdrop, 255 = unshadowed, lower = darker; None when the
        engine cannot tell.
    engine: name of the engine that made it, e.g. "studio".
    timings_ms: wall time of each named step, in milliseconds.
    """

    alpha: np.ndarray
    foreground: np.ndarray
    shading: np.ndarray | None
    engine: str
    timings_ms: dict[str, float] = field(default_factory=dict)


class MattingEngine(Protocol):
    """A matting algorithm: image uint8 (H, W, 3) RGB in, Matte of the same size out."""

    name: str

    def estimate(self, image: np.ndarray) -> Matte: ...


def check_image(image: np.ndarray) -> None:
    """An engine's input: uint8 (H, W, 3), both sides at least MIN_SIDE_PX (InvalidRequest otherwise)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE_PX:
        height, width = image.shape[:2]
        raise InvalidRequest(f"image is {width}x{height}: both sides must be at least {MIN_SIDE_PX} px for matting")
