"""Where the light comes from, and turning the subject towards it.

Directions live in the image plane: a unit vector (x to the right, y down) pointing from the subject towards the
light, with a strength in [0, 1] (0: no dominant direction).

The scene's comes from the large-scale brightness of the plate: a plane fitted to its linear luminance, the lit
side being the brighter one. A plate darker at the bottom says "from above" only half as loudly (sky and ground,
wall and floor make it so whatever the light), and one brighter at the bottom is not read as lit from below.
The subject's comes from how its brightness follows a relief guessed from the matte (a dome over the silhouette
whose height grows with the distance from the edge, so its normals point outwards at the rim), fitted as
Y = c0 * (1 + n . l).

`relight_ratio` is the soft directional shading of harmonisation: the subject's own shading is divided out and put
back with its left-right side turned towards the scene's light, in proportion to how clearly the scene is lit from
one side. It works at a reduced size (the shading is low-frequency) and is bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from replate.harmonize._srgb import linear_luminance

__all__ = [
    "NO_DIRECTION",
    "LightDirection",
    "Relief",
    "estimate_scene_light",
    "estimate_subject_light",
    "relief_from_alpha",
    "relight_ratio",
]

RELIEF_SIDE_PX = 192
"""The relief and the subject's light are worked out on the matte scaled to at most this many pixels a side."""
_SCENE_SIDE_PX = 64
_SCENE_FULL_SLOPE = 0.5
"""A plate whose brightness changes by this fraction of its mean over half its height is fully directional."""
_VERTICAL_TRUST = 0.5
_MIN_AMPLITUDE = 0.15
"""The side shading a scene clearly lit from one side gives a subject that shows none of its own."""
_SIDE_CLARITY_GAIN = 8.0
"""A scene lit from one side with strength 1/8 or more (horizontally) sets the subject's side fully."""
_RATIO_BOUNDS = (0.7, 1.4)
_MIN_SUBJECT_PX = 64


@dataclass(frozen=True)
class LightDirection:
    """x, y: unit vector towards the light (image axes, y down), (0, 0) when there is none; strength in [0, 1]."""

    x: float
    y: float
    strength: float

    @property
    def azimuth_deg(self) -> float:
        """Counter-clockwise from the right with y up: 0 from the right, 90 from above, 180 from the left."""
        return math.degrees(math.atan2(-self.y, self.x)) % 360.0

    def as_info(self) -> dict[str, float]:
        return {"azimuth_deg": round(self.azimuth_deg, 1), "strength": round(self.strength, 3)}


NO_DIRECTION = LightDirection(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Relief:
    """The subject's guessed relief at a reduced size (h, w): mask bool (h, w), the subject's opaque core;
    normal_x, normal_y float32 (h, w) in [-1, 1], the image-plane components of its surface normals."""

    mask: np.ndarray
    normal_x: np.ndarray
    normal_y: np.ndarray


def estimate_scene_light(scene: np.ndarray) -> LightDirection:
    """The dominant light direction of a plate, uint8 (H, W, 3) RGB: towards where it is brighter."""
    step = max(1, max(scene.shape[:2]) // (4 * _SCENE_SIDE_PX))  # thinned first: averaging 1 MP costs more
    thinned = scene[::step, ::step]
    height, width = thinned.shape[:2]
    scale = _SCENE_SIDE_PX / max(height, width)
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    luminance = linear_luminance(cv2.resize(thinned, size, interpolation=cv2.INTER_AREA))
    rows, cols = luminance.shape
    half = rows / 2.0  # one unit for both axes: half the height
    v, u = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u, v = (u + 0.5 - cols / 2.0) / half, (v + 0.5 - rows / 2.0) / half
    design = np.stack([np.ones(u.size, np.float32), u.ravel(), v.ravel()], axis=1)
    (mean, slope_x, slope_y), *_ = np.linalg.lstsq(design, luminance.ravel(), rcond=None)
    # Top-to-bottom, plates mostly go from sky to ground or from wall to floor: read as "from above", damped.
    slope_y = min(float(slope_y), 0.0) * _VERTICAL_TRUST
    return _direction(slope_x, slope_y, max(float(mean), 1e-3) * _SCENE_FULL_SLOPE)


def relief_from_alpha(alpha: np.ndarray) -> Relief:
    """The relief of the subject whose matte is alpha uint8 (H, W), at most RELIEF_SIDE_PX a side."""
    small = _reduced(alpha)
    solid = cv2.copyMakeBorder((small >= 128).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    distance = cv2.distanceTransform(solid, cv2.DIST_L2, 5)[1:-1, 1:-1]  # the frame's edge is the subject's too
    thickness = max(float(distance.max()), 1.0)
    # A dome: over a disc of radius R this is the sphere's height sqrt(R^2 - r^2) with d = R - r.
    height = np.sqrt(distance * (2.0 * thickness - distance)) / thickness
    height = cv2.GaussianBlur(height, (0, 0), max(1.0, thickness / 8.0))
    grad_x = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    grad_y = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    steepness = thickness / 2.0  # the dome's slope in height units per pixel, made about 1 at the rim
    norm = np.sqrt((grad_x * steepness) ** 2 + (grad_y * steepness) ** 2 + 1.0)
    mask = small >= 230
    return Relief(mask=mask, normal_x=-grad_x * steepness / norm, normal_y=-grad_y * steepness / norm)


def estimate_subject_light(foreground: np.ndarray, relief: Relief) -> LightDirection:
    """The light on the subject, foreground uint8 (H, W, 3) RGB whose relief (from its matte) is given: the
    amplitude l of Y = c0 * (1 + n . l) fitted over the relief's core; strength = |l| (clipped to 1)."""
    mask = relief.mask
    if mask.sum() < _MIN_SUBJECT_PX:
        return NO_DIRECTION
    luminance = linear_luminance(_reduced(foreground, relief.mask.shape))[mask]
    design = np.stack([np.ones(luminance.size, np.float32), relief.normal_x[mask], relief.normal_y[mask]], axis=1)
    (mean, along_x, along_y), *_ = np.linalg.lstsq(design, luminance, rcond=None)
    return _direction(along_x, along_y, max(float(mean), 1e-3))


def relight_ratio(relief: Relief, subject: LightDirection, scene: LightDirection) -> np.ndarray:
    """float32 (h, w) multiplier of the subject's luminance at the relief's size, bounded to _RATIO_BOUNDS: the
    subject's own directional shading divided out and put back with its side (left or right) moved towards the
    scene's, in proportion to how clearly the scene is lit from one side. Only the side is taken from the scene:
    its top-to-bottom light is the least reliable part of its estimate, so the subject keeps its own there."""
    own = np.array([subject.x, subject.y], np.float32) * subject.strength
    side_clarity = min(1.0, abs(scene.x) * scene.strength * _SIDE_CLARITY_GAIN)
    amplitude = max(abs(float(own[0])), _MIN_AMPLITUDE * side_clarity)
    target = own.copy()
    target[0] = (1.0 - side_clarity) * own[0] + side_clarity * amplitude * math.copysign(1.0, scene.x)
    before = 1.0 + relief.normal_x * own[0] + relief.normal_y * own[1]
    after = 1.0 + relief.normal_x * target[0] + relief.normal_y * target[1]
    return np.clip(after / np.maximum(before, 0.3), *_RATIO_BOUNDS).astype(np.float32)


def _direction(along_x: float, along_y: float, full_scale: float) -> LightDirection:
    length = math.hypot(along_x, along_y)
    if length < 1e-6:
        return NO_DIRECTION
    return LightDirection(along_x / length, along_y / length, min(1.0, length / full_scale))


def _reduced(pixels: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """pixels resized (area) to shape, or to at most RELIEF_SIDE_PX a side."""
    if shape is None:
        height, width = pixels.shape[:2]
        scale = min(1.0, RELIEF_SIDE_PX / max(height, width))
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    if shape == pixels.shape[:2]:
        return pixels
    return cv2.resize(pixels, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
