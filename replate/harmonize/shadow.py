"""Shadows the subject would throw on the scene's floor, synthesised from its matte and the scene's light.

    contact  a soft, dark core where the subject meets the floor and a wider, fainter penumbra: the footprint (the
             lowest few rows of the silhouette) spread by anisotropic Gaussians, flattened because the floor is
             seen at a grazing angle, and shifted a little away from the light
    cast     the contact shadow plus the silhouette laid down on the floor behind the subject: squashed to a third of
             its height and leaning away from the light; it fades and widens (its penumbra grows) with distance
             from the feet

Both need a base to stand on: when the subject runs off the bottom of the frame (a portrait cut at the chest) there
is no floor contact to shade and no shadow is made. The result is a shading layer like the one matting finds for a
photo's own shadow (uint8, 255 = unshadowed), which `compose` applies to the scene only, so the subject is never
darkened. The work is done at most 256 px a side and scaled up: shadows are soft.
"""

from __future__ import annotations

import cv2
import numpy as np

from replate.harmonize.light import LightDirection

__all__ = ["SHADOW_SIDE_PX", "synthesize_shadow"]

SHADOW_SIDE_PX = 256
CONTACT_OPACITY = (0.55, 0.3)
"""Darkness of the contact core and of its penumbra where they are darkest."""
CAST_OPACITY = 0.4
_FOOTPRINT_SHARE = 0.06  # the footprint: the lowest 6 % of the subject's height
_LEAN = 0.25  # the contact shadow moves this share of the footprint's width away from a fully directional light
_CAST_SQUASH = 0.35
_CAST_SHEAR = 0.9
_BOTTOM_TOUCH_SHARE = 0.05  # the subject covers this share of its widest row on the last row: it runs off the frame


def synthesize_shadow(alpha: np.ndarray, light: LightDirection, mode: str) -> np.ndarray | None:
    """uint8 (H, W) shading layer (255 = unshadowed) of a `mode` ("contact" or "cast") shadow of the subject whose
    matte is alpha uint8 (H, W), lit by light; None when the subject has no base in the frame."""
    if mode not in ("contact", "cast"):
        raise ValueError(f"shadow mode must be contact or cast, got {mode!r}")
    height, width = alpha.shape
    scale = min(1.0, SHADOW_SIDE_PX / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    coverage = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    rows = np.flatnonzero(coverage.sum(axis=1) > 0.5)
    if rows.size == 0 or _runs_off_the_bottom(coverage):
        return None
    top, base = int(rows[0]), int(rows[-1])
    lean = -light.x * light.strength  # away from the light, along the floor
    darkness = _contact(coverage, top, base, lean)
    if mode == "cast":
        darkness = np.maximum(darkness, _cast(coverage, top, base, lean))
    small_layer = (255.0 - np.rint(255.0 * np.clip(darkness, 0.0, 1.0))).astype(np.uint8)
    return cv2.resize(small_layer, (width, height), interpolation=cv2.INTER_LINEAR)


def _runs_off_the_bottom(coverage: np.ndarray) -> bool:
    widest = float(coverage.sum(axis=1).max())
    return float(coverage[-1].sum()) > _BOTTOM_TOUCH_SHARE * widest


def _contact(coverage: np.ndarray, top: int, base: int, lean: float) -> np.ndarray:
    """float32 (h, w) darkness in [0, 1] of the contact shadow."""
    subject_height = base - top + 1
    band = max(2, round(_FOOTPRINT_SHARE * subject_height))
    footprint = coverage[max(top, base - band + 1) : base + 1].max(axis=0)
    footprint_width = max(1.0, float((footprint > 0.5).sum()))
    canvas = np.zeros_like(coverage)
    canvas[base] = _shifted(footprint, lean * _LEAN * footprint_width)
    core = _spread(canvas, 0.06 * footprint_width + 1.0, 0.01 * subject_height + 1.0)
    penumbra = _spread(canvas, 0.2 * footprint_width + 2.0, 0.04 * subject_height + 2.0)
    return np.clip(CONTACT_OPACITY[0] * core + CONTACT_OPACITY[1] * penumbra, 0.0, 1.0)


def _cast(coverage: np.ndarray, top: int, base: int, lean: float) -> np.ndarray:
    """float32 (h, w) darkness in [0, 1] of the silhouette laid on the floor behind the subject."""
    subject_height = float(base - top + 1)
    shear = lean * _CAST_SHEAR
    # (x, y) -> (x + shear * (base - y), base - squash * (base - y)): the feet stay, the head lands behind them.
    matrix = np.array([[1.0, -shear, shear * base], [0.0, _CAST_SQUASH, (1.0 - _CAST_SQUASH) * base]], np.float32)
    size = (coverage.shape[1], coverage.shape[0])
    laid = cv2.warpAffine(coverage, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    near = cv2.GaussianBlur(laid, (0, 0), 0.01 * subject_height + 1.0)
    far = cv2.GaussianBlur(laid, (0, 0), 0.06 * subject_height + 1.0)
    rows = np.arange(coverage.shape[0], dtype=np.float32)[:, None]
    distance = np.clip((base - rows) / max(1.0, _CAST_SQUASH * subject_height), 0.0, 1.0)
    softened = (1.0 - distance) * near + distance * far
    return CAST_OPACITY * (1.0 - 0.7 * distance) * softened


def _shifted(profile: np.ndarray, shift_px: float) -> np.ndarray:
    """profile (w,) moved by shift_px (fractional, linear interpolation), zeros coming in."""
    positions = np.arange(profile.size, dtype=np.float32) - shift_px
    return np.interp(positions, np.arange(profile.size), profile, left=0.0, right=0.0).astype(np.float32)


def _spread(canvas: np.ndarray, sigma_x: float, sigma_y: float) -> np.ndarray:
    """canvas blurred by an anisotropic Gaussian, scaled so that its peak is 1."""
    spread = cv2.GaussianBlur(canvas, (0, 0), sigma_x, sigmaY=sigma_y)
    peak = float(spread.max())
    return spread / peak if peak > 0 else spread
