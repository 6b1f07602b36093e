"""The boundary between subject and scene, so that it does not look cut out: light wrap, grain and edge softness.

    light wrap   a little of the scene's light bleeds onto the subject's rim: within about 1 % of the image's
                 diagonal inside the edge, the subject's colour is mixed (at most WRAP_AMOUNT) with the scene's colour
                 just outside it (a blur of the scene weighted by 1 - alpha, so the subject's own colour does not
                 leak back in)
    grain        when the scene is noisier than the subject (noise estimated with Immerkaer's Laplacian kernel on
                 both), luminance noise makes up the difference, seeded
    softness     the composite is blurred across the matte's boundary (within 2 px of it, on pixels that are not
                 fully opaque, so a shadow behind the edge never reaches the subject), a little always and more when
                 the scene is softer than the subject (less fine detail), up to MAX_SOFTEN_PX

These run only when harmonisation is asked for (strength > 0), each in proportion to it; they are the only steps
that may touch subject pixels with alpha 255 besides the colour match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Texture", "add_grain", "measure_texture", "soften_boundary", "soften_sigma_px", "wrap_light"]

WRAP_AMOUNT = 0.2
MAX_SOFTEN_PX = 1.5
_WRAP_RADIUS_SHARE = 0.008
_WRAP_SCALE = 0.5  # the wrap is low-frequency: worked out at half size
_BASE_SOFTEN_PX = 0.3
_EDGE_BAND_PX = 2
# Immerkaer (1996): the Laplacian difference kernel whose response to noise-free smooth images is zero.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def wrap_light(foreground: np.ndarray, alpha: np.ndarray, scene: np.ndarray, strength: float) -> np.ndarray:
    """foreground uint8 (H, W, 3) RGB with the scene's light wrapped onto its rim; alpha uint8 (H, W); scene uint8
    (H, W, 3) RGB. Pixels far from the edge and pixels with alpha 0 are returned unchanged."""
    height, width = alpha.shape
    radius = max(1.0, _WRAP_RADIUS_SHARE * math.hypot(height, width) * _WRAP_SCALE)
    size = (max(1, round(width * _WRAP_SCALE)), max(1, round(height * _WRAP_SCALE)))
    outside = 1.0 - cv2.resize(alpha, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    small_scene = cv2.resize(scene, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    reach = cv2.GaussianBlur(outside, (0, 0), radius)
    light = cv2.GaussianBlur(small_scene * outside[:, :, None], (0, 0), radius) / np.maximum(reach, 1e-3)[:, :, None]
    reach = cv2.resize(reach, (width, height), interpolation=cv2.INTER_LINEAR)
    light = cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR)
    weight = np.clip(WRAP_AMOUNT * strength * 2.0 * reach, 0.0, WRAP_AMOUNT * strength)
    weight *= alpha > 0
    mixed = foreground.astype(np.float32) * (1.0 - weight[:, :, None]) + light * weight[:, :, None]
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Texture:
    """noise_levels: noise std in 8-bit levels (median-based, robust to edges); detail: mean absolute response of
    the same kernel, which fine texture and sharp focus raise and blur lowers."""

    noise_levels: float
    detail: float


def measure_texture(rgb: np.ndarray, mask: np.ndarray) -> Texture | None:
    """Texture of the luminance of rgb uint8 (H, W, 3) where mask bool (H, W) is set with its 3x3 neighbourhood
    (Immerkaer's Laplacian-difference kernel); None when fewer than 64 such pixels."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if inner.sum() < 64:
        return None
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    response = np.abs(cv2.filter2D(grey, -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))[inner]
    # Gaussian noise of std s gives a response of std 6 s (the kernel's norm); its median absolute value is
    # 0.6745 of that. The median (of every 4th value: plenty, and 4x cheaper) keeps edges and texture from
    # passing for noise.
    return Texture(noise_levels=float(np.median(response[::4])) / (6.0 * 0.6745), detail=float(response.mean()))


def add_grain(foreground: np.ndarray, alpha: np.ndarray, sigma_levels: float, strength: float, seed: int) -> np.ndarray:
    """foreground uint8 (H, W, 3) RGB with luminance noise of std strength * sigma_levels where alpha > 0."""
    amount = strength * sigma_levels
    if amount < 0.25:
        return foreground
    noise = np.random.default_rng(seed).standard_normal(alpha.shape, dtype=np.float32) * amount
    noisy = foreground.astype(np.float32) + (noise * (alpha > 0))[:, :, None]
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def soften_boundary(composite: np.ndarray, alpha: np.ndarray, sigma_px: float) -> np.ndarray:
    """composite uint8 (H, W, 3) blurred (Gaussian, sigma_px) within _EDGE_BAND_PX of the matte's boundary (where
    alpha uint8 (H, W) is neither 0 nor 255 or next to a change between them), on pixels with alpha < 255."""
    if sigma_px < 0.1:
        return composite
    edge = (alpha > 0) & (alpha < 255)
    edge |= cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    band = cv2.dilate(edge.astype(np.uint8), np.ones((2 * _EDGE_BAND_PX + 1,) * 2, np.uint8)) > 0
    band &= alpha < 255  # the opaque subject keeps its own pixels: only the scene's side of the edge is softened
    blurred = cv2.GaussianBlur(composite, (0, 0), sigma_px)
    softened = composite.copy()
    softened[band] = blurred[band]
    return softened


def soften_sigma_px(scene: Texture | None, subject: Texture | None, strength: float) -> float:
    """The boundary blur: _BASE_SOFTEN_PX, plus up to MAX_SOFTEN_PX as the scene has less fine detail than the
    subject, all scaled by strength."""
    if scene is None or subject is None or subject.detail <= 0:
        return strength * _BASE_SOFTEN_PX
    softer = float(np.clip(1.0 - scene.detail / subject.detail, 0.0, 1.0))
    return strength * min(MAX_SOFTEN_PX, _BASE_SOFTEN_PX + softer * MAX_SOFTEN_PX)
