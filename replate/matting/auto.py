"""The `auto` policy: the studio engine where the backdrop is one it can model, the learned engine elsewhere.

Both engines start from the segmenter's coarse mask, which `auto` computes once. The studio engine is used when

1. its backdrop model fits the border (`fit_studio_backdrop`, ~20-40 ms at 1 MP), and
2. the border the subject does not cover is plain (`border_plainness` at least `PLAIN_BORDER`: the median of
   16 border pieces' shares of pixels within noise of that model). The fit alone tolerates a border that is two
   thirds subject, so brick walls, grass and photos passed it; on the matting benchmark this score separates them
   (<= 0.82) from studio sweeps and gradients (1.0). An earlier version compared the studio cut with the coarse
   mask instead (IoU >= 0.8): that refused the studio engine on heads of hair, where it is 3x better than the
   learned one, because the segmenter misses the strands the studio engine keeps;
3. the studio cut, given the segmenter's sure core as a prior (`subject_prior`) and its backdrop (mask < 0.5) as
   the arbiter of holes too small for the studio engine to open on colour alone (`backdrop_prior`), keeps at least
   1 - `MAX_CORE_LOST` of that core (alpha above 0): a subject the colour of its backdrop (white on white) loses
   much of it, and the learned engine is the better one there. A glass body the studio engine gave a faint alpha
   is kept, not lost (counting alpha below 128 as lost sent the glass samples to the learned engine).

Otherwise, or when the studio engine finds no subject, the learned engine refines the same coarse mask. The
returned Matte's `engine` always names the engine that made it.
"""

from __future__ import annotations

import cv2
import numpy as np

from replate.errors import ReplateError, SubjectNotFound
from replate.matting._matte import Matte
from replate.matting.learned import SegmenterMatting
from replate.matting.segmenter import SEGMENTER_SIZE
from replate.matting.studio import StudioMatting, border_plainness, fit_studio_backdrop

__all__ = ["MAX_CORE_LOST", "PLAIN_BORDER", "AutoMatting", "segmenter_core"]

PLAIN_BORDER = 0.9
MAX_CORE_LOST = 0.25
_SURE_SUBJECT, _SURE_BACKDROP = 0.95, 0.1
_SURE_BACKDROP_PRIOR = 0.5  # the segmenter's own cut: a hole of a few px, blurred at 320 px, seldom gets below 0.1


class AutoMatting:
    """Picks `studio` or `learned` per image; see the module docstring."""

    name = "auto"

    def __init__(self, studio: StudioMatting, learned: SegmenterMatting) -> None:
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
        matte = self._studio_matte(image, coarse)
        return matte if matte is not None else self._learned.refine(image, coarse, timings)

    def _studio_matte(self, image: np.ndarray, coarse: np.ndarray) -> Matte | None:
        """The studio engine's Matte when the three conditions of the module docstring hold, else None."""
        try:
            backdrop = fit_studio_backdrop(image)
        except SubjectNotFound:
            return None
        if border_plainness(image, backdrop, coarse < _SURE_BACKDROP) < PLAIN_BORDER:
            return None
        core = segmenter_core(coarse, self._learned.family.size)
        try:
            matte = self._studio.estimate(
                image, subject_prior=core, backdrop=backdrop, backdrop_prior=coarse < _SURE_BACKDROP_PRIOR
            )
        except SubjectNotFound:
            return None
        lost = np.count_nonzero(core & (matte.alpha == 0)) / max(1, np.count_nonzero(core))
        return matte if lost <= MAX_CORE_LOST else None


def segmenter_core(coarse: np.ndarray, segmenter_size: int = SEGMENTER_SIZE) -> np.ndarray:
    """bool (H, W): where the coarse mask float32 (H, W), upsampled from segmenter_size px square, is sure of the
    subject, eroded by a segmenter pixel so that its blurred outline is left out."""
    radius = max(1, round(max(coarse.shape) / segmenter_size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode((coarse >= _SURE_SUBJECT).view(np.uint8), kernel).view(bool)
