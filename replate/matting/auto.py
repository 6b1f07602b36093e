"""The `auto` policy: the studio engine where the backdrop is one it can model, the learned engine elsewhere.

The check is the studio engine's own first step (`fit_studio_backdrop`: a smooth surface fitted to the border on a
thumbnail, ~20-40 ms at 1 MP), not a full studio run. A border can pass and still not be a backdrop (a brick wall,
a night sky with lights, measured on the matting benchmark), so the studio matte is then checked against the
segmenter's coarse mask: it is kept only when the two agree on what the subject is (IoU of their masks at least
`AGREEMENT`); otherwise, or when the studio engine finds no subject, the learned engine refines the same coarse
mask. The returned Matte's `engine` always names the engine that made it.
"""

from __future__ import annotations

import numpy as np

from replate.errors import ReplateError, SubjectNotFound
from replate.matting._matte import Matte, MattingEngine
from replate.matting.learned import SegmenterMatting
from replate.matting.studio import fit_studio_backdrop

__all__ = ["AGREEMENT", "AutoMatting"]

AGREEMENT = 0.8


class AutoMatting:
    """Picks `studio` or `learned` per image; see the module docstring."""

    name = "auto"

    def __init__(self, studio: MattingEngine, learned: SegmenterMatting) -> None:
        self._studio = studio
        self._learned = learned

    def estimate(self, image: np.ndarray) -> Matte:
        """image: uint8 (H, W, 3) RGB. Returns the chosen engine's Matte."""
        timings: dict[str, float] = {}
        return self._choose(image, self._learned.coarse(image, timings), timings)

    def estimate_many(self, images: list[np.ndarray]) -> list[Matte | ReplateError]:
        """As `estimate` for each image, with one segmenter call for all of them; a coded failure stands in the list
        in place of its image's Matte."""
        all_timings, masks = self._learned.coarse_many(images)
        results: list[Matte | ReplateError] = []
        for image, timings, coarse in zip(images, all_timings, masks, strict=True):
            if isinstance(coarse, ReplateError):
                results.append(coarse)
                continue
            try:
                results.append(self._choose(image, coarse, timings))
            except ReplateError as error:
                results.append(error)
        return results

    def _choose(self, image: np.ndarray, coarse: np.ndarray, timings: dict[str, float]) -> Matte:
        if not has_studio_backdrop(image):
            return self._learned.refine(image, coarse, timings)
        try:
            matte = self._studio.estimate(image)
        except SubjectNotFound:
            return self._learned.refine(image, coarse, timings)
        if mask_agreement(matte.alpha >= 128, coarse >= 0.5) >= AGREEMENT:
            return matte
        return self._learned.refine(image, coarse, timings)


def mask_agreement(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two bool (H, W) masks; 1.0 when both are empty."""
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 1.0


def has_studio_backdrop(image: np.ndarray) -> bool:
    """Whether the border of image uint8 (H, W, 3) RGB is a plain or gradient backdrop the studio engine models."""
    try:
        fit_studio_backdrop(image)
    except SubjectNotFound:
        return False
    return True
