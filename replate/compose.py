"""Put a matted subject on a new scene, or cut it out.

All arithmetic is exact integer math in uint16: a*F + (255 - a)*S is at most 255 * 255 = 65025, so it fits, and
division by 255 with rounding is the shift identity below. Where the matte is fully opaque the output is the input,
bit for bit, by construction and by an explicit copy.
"""

from __future__ import annotations

import numpy as np

from replate.matting import Matte

__all__ = ["compose", "cutout"]


def compose(image: np.ndarray, matte: Matte, scene: np.ndarray, *, preserve_shadow: bool = True) -> np.ndarray:
    """Blend the subject over a scene: out = a*F + (1 - a)*scene', a = matte.alpha / 255.

    image: uint8 (H, W, 3) RGB original; matte: Matte of that image; scene: uint8 (H, W, 3) RGB.
    scene' is the scene darkened by matte.shading (uint8, 255 = unshadowed) when preserve_shadow is set and the
    matte has shading, else the scene. Returns uint8 (H, W, 3) RGB; pixels with alpha 255 are copied from image.
    """
    _check_shapes(image, matte, scene)
    backdrop = scene
    if preserve_shadow and matte.shading is not None:
        backdrop = _divide_by_255(scene.astype(np.uint16) * matte.shading.astype(np.uint16)[:, :, None])
    alpha = matte.alpha.astype(np.uint16)[:, :, None]
    blended = alpha * matte.foreground.astype(np.uint16) + (255 - alpha) * backdrop.astype(np.uint16)
    out = _divide_by_255(blended)
    np.copyto(out, image, where=(matte.alpha == 255)[:, :, None])
    return out


def cutout(image: np.ndarray, matte: Matte) -> np.ndarray:
    """RGBA uint8 (H, W, 4): the matte's foreground colours and alpha; RGB equals image where alpha is 255.

    image: uint8 (H, W, 3) RGB original; matte: Matte of that image.
    """
    _check_shapes(image, matte, None)
    rgba = np.empty((*image.shape[:2], 4), dtype=np.uint8)
    rgba[:, :, :3] = matte.foreground
    rgba[:, :, 3] = matte.alpha
    np.copyto(rgba[:, :, :3], image, where=(matte.alpha == 255)[:, :, None])
    return rgba


def _divide_by_255(values: np.ndarray) -> np.ndarray:
    """round(values / 255) for uint16 values in [0, 65025], exactly, without a division."""
    shifted = values + 128
    return ((shifted + (shifted >> 8)) >> 8).astype(np.uint8)


def _check_shapes(image: np.ndarray, matte: Matte, scene: np.ndarray | None) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    size = image.shape[:2]
    if matte.alpha.shape != size or matte.foreground.shape != image.shape:
        raise ValueError(f"matte is {matte.alpha.shape}, image is {size}: they must match")
    if matte.shading is not None and matte.shading.shape != size:
        raise ValueError(f"matte shading is {matte.shading.shape}, image is {size}: they must match")
    if scene is not None and (scene.dtype != np.uint8 or scene.shape != image.shape):
        raise ValueError(f"scene must be uint8 {image.shape}, got {scene.dtype} {scene.shape}")
