"""The `auto` policy: the studio engine where the backdrop is one it can model, the learned engine elsewhere.

The check is the studio engine's own first step (`fit_studio_backdrop`: a smooth surface fitted to the border on a
thumbnail, ~20-40 ms at 1 MP), not a full studio run. When the border passes but the studio engine still finds no
subject apart from the backdrop (SubjectNotFound: e.g. a subject that fills the frame), the learned engine gets
the image; the returned Matte's `engine` always names the engine that made it.
"""

from __future__ import annotations

import numpy as np

from replate.errors import SubjectNotFound
from replate.matting._matte import Matte, MattingEngine
from replate.matting.studio import fit_studio_backdrop

__all__ = ["AutoMatting"]


class AutoMatting:
    """Picks `studio` or `learned` per image; see the module docstring."""

    name = "auto"

    def __init__(self, studio: MattingEngine, learned: MattingEngine) -> None:
        self._studio = studio
        self._learned = learned

    def estimate(self, image: np.ndarray) -> Matte:
        """image: uint8 (H, W, 3) RGB. Returns the chosen engine's Matte."""
        if has_studio_backdrop(image):
            try:
                return self._studio.estimate(image)
            except SubjectNotFound:
                pass  # the learned engine decides; Matte.engine tells which one answered
        return self._learned.estimate(image)


def has_studio_backdrop(image: np.ndarray) -> bool:
    """Whether the border of image uint8 (H, W, 3) RGB is a plain or gradient backdrop the studio engine models."""
    try:
        fit_studio_backdrop(image)
    except SubjectNotFound:
        return False
    return True
