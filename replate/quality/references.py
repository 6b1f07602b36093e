"""Reference mattes measured beside the engines in every run, so that each number has a floor and a ceiling.

naive_threshold_matte: the segmenter's coarse mask, upsampled to the image and thresholded at 0.5, with the image
    itself as foreground colours. This is what simple background removers ship (a binary cut-out of a saliency
    map); an engine that cannot beat it on every category adds nothing. Needs the U²-Net segmenter
    (replate.matting.segmenter); absent that, the reference is skipped.
oracle_matte: pymatting's closed-form matting (Levin et al. 2008, `estimate_alpha_cf`) given the *true* trimap,
    then pymatting's multi-level foreground estimation (Germer et al. 2020, `estimate_foreground_ml`). No engine
    gets a trimap, so this is an upper bound for a classical method, not a competitor. Its solver's time and
    memory grow with the unknown area, so runs use it only up to ORACLE_MAX_MEGAPIXELS (1 MP).
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

from replate.matting import Matte

if TYPE_CHECKING:
    from replate.matting.segmenter import Segment

__all__ = [
    "NAIVE_THRESHOLD",
    "ORACLE",
    "ORACLE_MAX_MEGAPIXELS",
    "OracleUnavailable",
    "naive_threshold_matte",
    "oracle_matte",
    "true_trimap",
]

NAIVE_THRESHOLD = "naive-threshold"
ORACLE = "oracle-cf-trimap"
ORACLE_MAX_MEGAPIXELS = 1.0


class OracleUnavailable(ValueError):
    """The true trimap has no definite subject pixel (a subject that is translucent everywhere, like the glass
    category): closed-form matting needs some, so there is no oracle for that sample."""


def naive_threshold_matte(image: np.ndarray, segment: Segment) -> Matte:
    """Binary matte: the segmenter's mask for image uint8 (H, W, 3) RGB, upsampled bilinearly, >= 0.5 is subject.

    segment: a replate.matting.segmenter.Segment (float32 (N, 3, 320, 320) -> (N, 320, 320)), e.g. OnnxSegmenter.
    Returns alpha uint8 in {0, 255} at the image's size and the image as foreground.
    """
    from replate.matting.segmenter import coarse_mask, segmenter_input

    start = time.perf_counter()
    raw = segment(segmenter_input(image)[None])[0]
    mask = coarse_mask(raw, image.shape[0], image.shape[1])
    alpha = np.where(mask >= 0.5, 255, 0).astype(np.uint8)
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    timings = {"total": elapsed_ms}
    return Matte(alpha=alpha, foreground=image.copy(), shading=None, engine=NAIVE_THRESHOLD, timings_ms=timings)


def true_trimap(truth: np.ndarray, radius_px: int) -> np.ndarray:
    """float64 (H, W) trimap for pymatting: 1 definite subject, 0 definite backdrop, 0.5 unknown.

    truth: float (H, W) in [0, 1]. Unknown is every pixel within radius_px of a fractional true alpha (the usual
    "dilate and erode the ground truth" trimap of matting benchmarks); the rest takes the truth's value.
    """
    fractional = ((truth > 0.0) & (truth < 1.0)).view(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))
    unknown = cv2.dilate(fractional, kernel).astype(bool)
    trimap = np.where(truth >= 0.5, 1.0, 0.0)
    trimap[unknown] = 0.5
    return trimap


def oracle_matte(image: np.ndarray, truth: np.ndarray, radius_px: int) -> Matte:
    """Closed-form matting of image uint8 (H, W, 3) RGB with the true trimap (see true_trimap), and
    multi-level foreground colours; alpha uint8 (H, W). Only for small images (ORACLE_MAX_MEGAPIXELS).
    Raises OracleUnavailable when the trimap has no definite subject."""
    from pymatting import estimate_alpha_cf, estimate_foreground_ml

    start = time.perf_counter()
    pixels = image.astype(np.float64) / 255.0
    trimap = true_trimap(truth, radius_px)
    if not (trimap == 1.0).any():
        raise OracleUnavailable("the true trimap has no definite subject pixel")
    # pymatting prints "PERFORMANCE WARNING" lines when its preconditioner needs a larger shift; they are noise here.
    with contextlib.redirect_stdout(io.StringIO()):
        alpha = estimate_alpha_cf(pixels, trimap)
        foreground = estimate_foreground_ml(pixels, alpha)
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    return Matte(
        alpha=np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8),
        foreground=np.rint(np.clip(foreground, 0.0, 1.0) * 255.0).astype(np.uint8),
        shading=None,
        engine=ORACLE,
        timings_ms={"total": elapsed_ms},
    )
