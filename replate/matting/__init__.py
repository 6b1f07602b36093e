"""Matting: estimate how much of each pixel is subject, and the subject's own colours.

Engines are small objects behind the `MattingEngine` protocol, listed in the explicit `ENGINES` registry; adding
one is a module plus a line here.
"""

from __future__ import annotations

import numpy as np

from replate.errors import InvalidRequest
from replate.matting._matte import Matte, MattingEngine
from replate.matting.studio import StudioMatting

__all__ = ["ENGINES", "Matte", "MattingEngine", "StudioMatting", "estimate_matte"]

ENGINES: dict[str, MattingEngine] = {"studio": StudioMatting()}


def estimate_matte(image: np.ndarray, engine: str = "studio") -> Matte:
    """Matte of image uint8 (H, W, 3) RGB with the named engine; unknown names raise InvalidRequest."""
    try:
        chosen = ENGINES[engine]
    except KeyError:
        raise InvalidRequest(f"matting engine {engine!r} is unknown: use one of {', '.join(sorted(ENGINES))}") from None
    return chosen.estimate(image)
