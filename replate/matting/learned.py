"""The learned matting engine: a segmenter's coarse mask (320 x 320 for U²-Net), refined to a true alpha at full
resolution.

The segmenter (U²-Net by default, ISNet or BiRefNet given by path; see `segmenter`) says which pixels are the
subject; `refine` turns its blurred outline into fractional alpha and clean foreground colours. When the border is
a plain or gradient backdrop the studio engine can model, its cast-shadow layer is kept too (the same backdrop
model, `studio.fit_studio_backdrop`, over the local backdrop colours the refinement spread behind the subject); on
any other backdrop shading is None.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from replate.errors import ReplateError, SubjectNotFound
from replate.matting._matte import Matte, check_image
from replate.matting.carve import carve_backdrop
from replate.matting.refine import refine_matte
from replate.matting.segmenter import U2NET, Segment, SegmenterFormat, coarse_mask, segmenter_input
from replate.matting.studio import backdrop_shading, fit_studio_backdrop
from replate.timing import Laps, timed

__all__ = ["SegmenterMatting"]

_MIN_SUBJECT_FRACTION = 0.001


class SegmenterMatting:
    """Matting engine for any photo: `segment` (float32 (N, 3, S, S) -> (N, S, S), S the size of the segmenter's
    `family`) plus refinement."""

    def __init__(self, segment: Segment, segmenter_name: str, family: SegmenterFormat = U2NET) -> None:
        self._segment = segment
        self.family = family
        self.name = f"{segmenter_name}+refine"

    def estimate(self, image: np.ndarray) -> Matte:
        """image: uint8 (H, W, 3) RGB. Returns a Matte of the same size; raises SubjectNotFound on an empty mask."""
        timings: dict[str, float] = {}
        return self.refine(image, self.coarse(image, timings), timings)

    def estimate_many(self, images: list[np.ndarray]) -> list[Matte | ReplateError]:
        """The mattes of several images with one segmenter call for all of them (a batch on the segmenter); a coded
        failure stands in the list in place of its image's Matte."""
        results: list[Matte | ReplateError] = []
        for image, timings, coarse in zip(images, *self.coarse_many(images), strict=True):
            results.append(
                coarse if isinstance(coarse, ReplateError) else _or_error(self.refine, image, coarse, timings)
            )
        return results

    def coarse(self, image: np.ndarray, timings: dict[str, float]) -> np.ndarray:
        """The segmenter's coarse mask of image uint8 (H, W, 3) RGB: float32 (H, W) in [0, 1]."""
        all_timings, masks = self.coarse_many([image])
        timings.update(all_timings[0])
        if isinstance(masks[0], ReplateError):
            raise masks[0]
        return masks[0]

    def coarse_many(self, images: list[np.ndarray]) -> tuple[list[dict[str, float]], list[np.ndarray | ReplateError]]:
        """Per image, its timings and its coarse mask float32 (H, W) in [0, 1] (or why it has none), from one call
        of the segmenter over all valid images."""
        masks: list[np.ndarray | ReplateError] = []
        for image in images:
            try:
                check_image(image)
                masks.append(segmenter_input(image, self.family))
            except ReplateError as error:
                masks.append(error)
        valid = [index for index, mask in enumerate(masks) if not isinstance(mask, ReplateError)]
        start = time.perf_counter()
        raw = np.asarray(self._segment(np.stack([masks[index] for index in valid]))) if valid else np.empty(0)
        if len(raw) != len(valid):
            raise ValueError(f"segmenter returned {len(raw)} maps for {len(valid)} images")
        shared_ms = (time.perf_counter() - start) * 1000.0
        all_timings = [{"segment": shared_ms} for _ in images]
        for position, index in enumerate(valid):
            height, width = images[index].shape[:2]
            with timed(all_timings[index], "carve"):
                masks[index] = carve_backdrop(images[index], coarse_mask(raw[position], height, width, self.family))
        return all_timings, masks

    def refine(self, image: np.ndarray, coarse: np.ndarray, timings: dict[str, float]) -> Matte:
        """The Matte of image uint8 (H, W, 3) RGB from its coarse mask float32 (H, W) in [0, 1]."""
        start = time.perf_counter()
        laps = Laps(timings)
        if (coarse >= 0.5).mean() < _MIN_SUBJECT_FRACTION:
            raise SubjectNotFound("no subject found: the segmenter sees nothing in the foreground of this image")
        refined = refine_matte(image, coarse, self.family.size)
        laps.lap("refine")
        alpha = np.rint(refined.alpha * 255.0).astype(np.uint8)
        foreground = np.rint(refined.foreground).astype(np.uint8)
        np.copyto(foreground, image, where=(alpha == 255)[:, :, None])
        laps.lap("foreground")
        shading = _shading(image, refined.backdrop)
        laps.lap("shading")
        timings["total"] = (
            (time.perf_counter() - start) * 1000.0 + timings.get("segment", 0.0) + timings.get("carve", 0.0)
        )
        return Matte(alpha=alpha, foreground=foreground, shading=shading, engine=self.name, timings_ms=timings)


Result = TypeVar("Result")


def _or_error(step: Callable[..., Result], *args: object) -> Result | ReplateError:
    try:
        return step(*args)
    except ReplateError as error:
        return error


def _shading(image: np.ndarray, local_backdrop: np.ndarray) -> np.ndarray | None:
    """uint8 (H, W) cast-shadow layer when the border is a backdrop the studio model fits, else None."""
    try:
        model = fit_studio_backdrop(image)
    except SubjectNotFound:
        return None
    return backdrop_shading(local_backdrop, model)
