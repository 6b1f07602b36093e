"""Matting error metrics: the four of alphamatting.com, a boundary-band SAD and the colour spill of a composite.

The first four follow C. Rhemann, C. Rother, J. Wang, M. Gelautz, P. Kohli, P. Rott, "A Perceptually Motivated
Online Benchmark for Image Matting", CVPR 2009 (the alphamatting.com benchmark), in the form of the reference
MATLAB code published with Deep Image Matting (Xu et al., CVPR 2017: compute_sad_loss, compute_mse_loss,
compute_gradient_loss, compute_connectivity_error), which most matting papers report. Two differences, both
stated where they apply: every sum runs over the whole image (not only the trimap's unknown region: an engine
here has no trimap, and its errors far from the subject count too), and the alpha values are in [0, 1].

All alpha arguments: float (H, W) in [0, 1], estimate first and truth second, same shape.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "boundary_band",
    "boundary_band_sad",
    "colour_spill",
    "connectivity_error",
    "gradient_error",
    "mse",
    "sad",
]

GRADIENT_SIGMA = 1.4
CONNECTIVITY_STEP = 0.1
CONNECTIVITY_MIN_DISTANCE = 0.15  # the "theta" of Rhemann et al.: a lower loss of connectivity is not penalised


def sad(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Sum of absolute differences over the image, divided by 1000 (alphamatting.com's SAD unit)."""
    _check(alpha, truth)
    return float(np.abs(alpha.astype(np.float64) - truth).sum() / 1000.0)


def mse(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared difference over the image (alpha in [0, 1]; tables usually print it x 1000)."""
    _check(alpha, truth)
    return float(np.mean((alpha.astype(np.float64) - truth) ** 2))


def gradient_error(alpha: np.ndarray, truth: np.ndarray, sigma: float = GRADIENT_SIGMA) -> float:
    """Sum of squared differences of gradient magnitudes, divided by 1000 (Rhemann et al. 2009, "gradient").

    Gradients are first-order Gaussian derivatives with sigma 1.4 px, as in the benchmark; the derivative kernels
    are the exact (unnormalised) derivatives of the Gaussian, so values are comparable between engines here, not
    to the last digit with other papers.
    """
    _check(alpha, truth)
    return float(np.sum((_gradient_magnitude(alpha, sigma) - _gradient_magnitude(truth, sigma)) ** 2) / 1000.0)


def connectivity_error(
    alpha: np.ndarray, truth: np.ndarray, step: float = CONNECTIVITY_STEP, theta: float = CONNECTIVITY_MIN_DISTANCE
) -> float:
    """Connectivity error of Rhemann et al. 2009, divided by 1000; 0 when alpha equals truth.

    For each pixel, l is the highest threshold (in steps of 0.1) at which it still belongs to the largest
    4-connected component of {alpha >= t and truth >= t} (the "source region"); the degree of connectivity of a
    value a is phi = 1 - d * [d >= theta] with d = a - l. The error is sum |phi(alpha) - phi(truth)|. It punishes
    islands and broken-off parts more than SAD does: a detached blob is far from the connected source region.
    """
    _check(alpha, truth)
    alpha = alpha.astype(np.float32)
    truth = truth.astype(np.float32)
    level = np.full(alpha.shape, -1.0, dtype=np.float32)
    thresholds = np.arange(0.0, 1.0 + step / 2, step)
    for previous, threshold in itertools.pairwise(thresholds):
        both = ((alpha >= threshold) & (truth >= threshold)).view(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        if count > 1:
            largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            source = labels == largest
        else:
            source = np.zeros(alpha.shape, dtype=bool)
        level[(level == -1) & ~source] = previous
    level[level == -1] = 1.0
    return float(np.abs(_connectivity(alpha, level, theta) - _connectivity(truth, level, theta)).sum() / 1000.0)


def boundary_band(truth: np.ndarray, radius_px: int) -> np.ndarray:
    """bool (H, W): pixels within radius_px (Euclidean) of the true fractional region (0 < truth < 1) or of the
    0.5 contour; where matting is hard, and where a coarse mask and a good matte differ."""
    if radius_px < 0:
        raise ValueError(f"radius_px must be >= 0, got {radius_px}")
    inside = truth >= 0.5
    contour = np.zeros(truth.shape, dtype=bool)
    contour[:-1] |= inside[:-1] != inside[1:]
    contour[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    seed = contour | ((truth > 0) & (truth < 1))
    if radius_px == 0:
        return seed
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))
    return cv2.dilate(seed.view(np.uint8), kernel).astype(bool)


def boundary_band_sad(alpha: np.ndarray, truth: np.ndarray, band: np.ndarray) -> float:
    """SAD (/1000) restricted to band, bool (H, W) (see boundary_band)."""
    _check(alpha, truth)
    return float(np.abs(alpha[band].astype(np.float64) - truth[band]).sum() / 1000.0)


def colour_spill(
    composite: np.ndarray,
    alpha: np.ndarray,
    foreground: np.ndarray,
    backdrop_rgb: tuple[float, float, float],
    band: np.ndarray,
) -> float:
    """Mean absolute colour error, in 8-bit levels (0-255), of a composite over a new plain backdrop, in band.

    composite: uint8 or float (H, W, 3) RGB, what the engine's matte and foreground colours give over backdrop_rgb.
    alpha, foreground: the truth, float (H, W) in [0, 1] and float (H, W, 3) RGB in [0, 255].
    The truth composite is alpha * F + (1 - alpha) * backdrop. Old-backdrop colour left in the fringe (spill), a
    halo, a lost strand or a kept shadow all show up here, where the viewer sees them: on the new background.
    """
    if composite.shape != foreground.shape or alpha.shape != band.shape or composite.shape[:2] != alpha.shape:
        raise ValueError(
            f"shapes differ: composite {composite.shape}, foreground {foreground.shape}, "
            f"alpha {alpha.shape}, band {band.shape}"
        )
    if not band.any():
        return 0.0
    a = alpha[band].astype(np.float64)[:, None]
    truth = a * foreground[band] + (1.0 - a) * np.asarray(backdrop_rgb, dtype=np.float64)
    return float(np.mean(np.abs(composite[band].astype(np.float64) - truth)))


def _gradient_magnitude(alpha: np.ndarray, sigma: float) -> np.ndarray:
    values = alpha.astype(np.float32)
    dy = ndimage.gaussian_filter(values, sigma, order=(1, 0), mode="nearest")
    dx = ndimage.gaussian_filter(values, sigma, order=(0, 1), mode="nearest")
    return np.hypot(dx, dy).astype(np.float64)


def _connectivity(values: np.ndarray, level: np.ndarray, theta: float) -> np.ndarray:
    distance = values - level
    return 1.0 - distance * (distance >= theta)


def _check(alpha: np.ndarray, truth: np.ndarray) -> None:
    if alpha.shape != truth.shape or alpha.ndim != 2:
        raise ValueError(f"alpha {alpha.shape} and truth {truth.shape} must be the same (H, W) shape")
