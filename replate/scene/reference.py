"""Plates from a reference photo, cover-cropped to the output size."""

from __future__ import annotations

import math

import cv2
import numpy as np

from replate.scene._spec import Scene, SceneSpec

__all__ = ["ReferenceScene", "cover_crop"]


def cover_crop(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale photo uint8 (h, w, 3) so it covers width x height, then centre-crop: uint8 (height, width, 3).

    Shrinking uses area averaging (no aliasing), enlarging bicubic interpolation.
    """
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3 or 0 in photo.shape:
        raise ValueError(f"reference must be uint8 (h, w, 3), got {photo.dtype} {photo.shape}")
    photo_height, photo_width = photo.shape[:2]
    scale = max(width / photo_width, height / photo_height)
    scaled_width = max(width, math.ceil(photo_width * scale - 1e-9))
    scaled_height = max(height, math.ceil(photo_height * scale - 1e-9))
    if (scaled_width, scaled_height) != (photo_width, photo_height):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        photo = cv2.resize(photo, (scaled_width, scaled_height), interpolation=interpolation)
    left = (scaled_width - width) // 2
    top = (scaled_height - height) // 2
    return np.ascontiguousarray(photo[top : top + height, left : left + width])


class ReferenceScene:
    """The client's reference photo as the plate."""

    name = "reference"

    def render(self, spec: SceneSpec, width: int, height: int) -> Scene:
        if spec.reference is None:
            raise ValueError("ReferenceScene needs spec.reference")
        return Scene(rgb=cover_crop(spec.reference, width, height), engine=self.name)
