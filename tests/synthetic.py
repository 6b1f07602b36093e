"""Synthetic shots with known ground truth, for tests and benchmarks: a studio product scene, and a keyed disc.

A product scene (a bottle with a translucent glass neck and a mug with a handle whose hole shows the backdrop)
on a light gradient sweep, with a soft cast shadow and sensor noise. Shapes are signed-distance fields, so the true
alpha (anti-aliased edges, soft edges, the translucent part) is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StudioShot", "make_studio_shot", "red_disc_on_green_texture", "render_studio_shot"]

BOTTLE_RGB = (38.0, 112.0, 150.0)
MUG_RGB = (196.0, 54.0, 40.0)
LABEL_RGB = (236.0, 196.0, 96.0)
GLASS_ALPHA = 0.45
NOISE_LEVELS = 2.0


@dataclass(frozen=True)
class StudioShot:
    """rgb: uint8 (H, W, 3); alpha: float32 (H, W) in [0, 1]; backdrop: float32 (H, W, 3) in [0, 255], the clean
    sweep; shadow: float32 (H, W) in (0, 1], multiplier of the backdrop (1 = unshadowed); glass: bool (H, W), the
    translucent part."""

    rgb: np.ndarray
    alpha: np.ndarray
    backdrop: np.ndarray
    shadow: np.ndarray
    glass: np.ndarray


def make_studio_shot(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rgb uint8 (H, W, 3) of a product shot on a gradient sweep, and its true alpha float32 (H, W) in [0, 1]."""
    shot = render_studio_shot(width, height, seed)
    return shot.rgb, shot.alpha


def render_studio_shot(width: int, height: int, seed: int, *, touch_bottom: bool = False) -> StudioShot:
    """The full shot with its ground truth. touch_bottom: the bottle stands on (is cut by) the bottom edge."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    unit = min(width, height) / 840.0  # sizes are designed at 1250x840
    cx = width * (0.40 + rng.uniform(-0.02, 0.02))
    base_y = height * 1.05 if touch_bottom else height * 0.80

    body = _round_rect(x, y, cx, base_y - 190 * unit, 85 * unit, 190 * unit, 30 * unit)
    shoulder = _circle(x, y, cx, base_y - 360 * unit, 70 * unit)
    glass = _round_rect(x, y, cx, base_y - 440 * unit, 7 * unit, 70 * unit, 4 * unit)
    label = _round_rect(x, y, cx, base_y - 170 * unit, 70 * unit, 60 * unit, 8 * unit)
    mug_x = cx + 260 * unit
    mug_y = height * 0.80 - 90 * unit
    mug = _round_rect(x, y, mug_x, mug_y, 75 * unit, 90 * unit, 12 * unit)
    handle = np.abs(_circle(x, y, mug_x + 85 * unit, mug_y, 48 * unit)) - 13 * unit
    handle = np.where(x > mug_x, handle, np.inf)

    edge_px = 1.2
    opaque = _coverage(np.minimum(np.minimum(body, shoulder), np.minimum(mug, handle)), edge_px)
    glass_cover = _coverage(glass, edge_px) * (1 - opaque)
    alpha = np.clip(opaque + GLASS_ALPHA * glass_cover, 0, 1).astype(np.float32)

    foreground = _shade_cylinder(x, cx, 85 * unit, BOTTLE_RGB)
    foreground = _paint(foreground, _coverage(label, 1.0), _shade_cylinder(x, cx, 85 * unit, LABEL_RGB))
    mug_side = (_coverage(mug, edge_px) + _coverage(handle, edge_px)).clip(0, 1)
    foreground = _paint(foreground, mug_side, _shade_cylinder(x, mug_x, 75 * unit, MUG_RGB))

    backdrop = _sweep(x, y, width, height)
    shadow = _cast_shadow(x, y, cx + 60 * unit, height * 0.80, 230 * unit, 30 * unit)
    composite = alpha[:, :, None] * foreground + (1 - alpha[:, :, None]) * backdrop * shadow[:, :, None]
    composite += rng.normal(0.0, NOISE_LEVELS, composite.shape).astype(np.float32)
    rgb = np.clip(np.rint(composite), 0, 255).astype(np.uint8)
    return StudioShot(rgb=rgb, alpha=alpha, backdrop=backdrop, shadow=shadow, glass=glass_cover > 0.5)


def red_disc_on_green_texture(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB image and its bool subject: a red disc on a mottled green backdrop no studio model fits."""
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - width * 0.45) ** 2 + (y - height * 0.5) ** 2 < (0.3 * height) ** 2
    image = np.empty((height, width, 3), np.float32)
    image[:] = (40.0, 150.0, 60.0)
    image += rng.normal(0.0, 25.0, (height // 8 + 1, width // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:height, :width]
    image[disc] = (200.0, 40.0, 50.0)
    return np.clip(image, 0, 255).astype(np.uint8), disc


def _round_rect(x: np.ndarray, y: np.ndarray, cx: float, cy: float, hw: float, hh: float, r: float) -> np.ndarray:
    """Signed distance (px, negative inside) to a rectangle with rounded corners."""
    qx = np.abs(x - cx) - (hw - r)
    qy = np.abs(y - cy) - (hh - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    return outside + inside - r


def _circle(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(x - cx, y - cy) - r


def _coverage(distance: np.ndarray, edge_px: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance: a linear ramp edge_px wide."""
    return np.clip(0.5 - distance / edge_px, 0, 1).astype(np.float32)


def _shade_cylinder(x: np.ndarray, cx: float, half_width: float, rgb: tuple[float, float, float]) -> np.ndarray:
    """float32 (H, W, 3): a colour lit like a cylinder from the upper left."""
    u = np.clip((x - cx) / half_width, -1, 1)
    light = 0.75 + 0.3 * np.sqrt(1 - u * u) - 0.12 * u
    return (light[:, :, None] * np.asarray(rgb, dtype=np.float32)).clip(0, 255).astype(np.float32)


def _paint(base: np.ndarray, coverage: np.ndarray, color: np.ndarray) -> np.ndarray:
    return base * (1 - coverage[:, :, None]) + color * coverage[:, :, None]


def _sweep(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """float32 (H, W, 3): light grey wall brightening towards a soft floor curve, with a gentle side falloff."""
    v = y / height
    u = x / width - 0.5
    wall_to_floor = 1 / (1 + np.exp(-(v - 0.6) / 0.12))
    level = 218 + 22 * wall_to_floor - 30 * u * u - 8 * u
    tint = np.array([1.0, 0.995, 0.985], dtype=np.float32)
    return (level[:, :, None] * tint).astype(np.float32)


def _cast_shadow(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """float32 (H, W) in (0, 1]: a soft elliptical floor shadow, 35 % deep at its centre."""
    d2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return (1 - 0.35 * np.exp(-d2)).astype(np.float32)
