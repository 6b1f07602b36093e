"""The matte value object and the engine protocol, shared by the engines and the package surface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


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
