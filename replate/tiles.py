"""Contact-sheet tiles: a picture fitted into a labelled tile, a header label, a checkerboard behind transparency.

Pictures are uint8 (H, W, 3) RGB; alpha is uint8 (H, W), 255 = opaque.
"""

from __future__ import annotations

import cv2
import numpy as np

LABEL_PX = 22
_FONT = cv2.FONT_HERSHEY_SIMPLEX

__all__ = ["LABEL_PX", "checkerboard", "header_tile", "labelled_tile", "over_checkerboard"]


def checkerboard(height: int, width: int, square_px: int) -> np.ndarray:
    """uint8 (height, width, 3) grey squares of square_px, as image editors show transparency."""
    y, x = np.mgrid[0:height, 0:width]
    light = ((y // square_px + x // square_px) % 2).astype(bool)
    board = np.where(light, 204, 153).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def over_checkerboard(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """rgb over a checkerboard by its alpha, for eyes (not a colour-exact composite)."""
    height, width = alpha.shape
    board = checkerboard(height, width, square_px=max(8, height // 40)).astype(np.float32)
    weight = alpha.astype(np.float32)[:, :, None] / 255.0
    return np.round(rgb.astype(np.float32) * weight + board * (1.0 - weight)).astype(np.uint8)


def labelled_tile(pixels: np.ndarray, label: str, tile_w: int, tile_h: int) -> np.ndarray:
    """The picture fitted (letterboxed, area-resampled) into tile_w x tile_h, a label strip on top."""
    height, width = pixels.shape[:2]
    scale = min(tile_w / width, (tile_h - LABEL_PX) / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    tile = np.full((tile_h, tile_w, 3), 32, dtype=np.uint8)
    top = LABEL_PX + (tile_h - LABEL_PX - size[1]) // 2
    left = (tile_w - size[0]) // 2
    tile[top : top + size[1], left : left + size[0]] = small
    cv2.putText(tile, label, (4, LABEL_PX - 7), _FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    tile[:, -1] = 0
    tile[-1, :] = 0
    return tile


def header_tile(label: str, tile_w: int) -> np.ndarray:
    """A header cell: the label on black, tile_w wide."""
    tile = np.full((LABEL_PX + 6, tile_w, 3), 0, dtype=np.uint8)
    cv2.putText(tile, label, (4, LABEL_PX - 3), _FONT, 0.45, (255, 255, 160), 1, cv2.LINE_AA)
    return tile
