"""Solid-colour plates."""

from __future__ import annotations

import re

import numpy as np
from PIL import ImageColor

from replate.errors import InvalidRequest
from replate.scene._spec import Scene, SceneSpec

__all__ = ["ColorScene", "parse_color"]

_HEX = re.compile(r"#(?:[0-9a-f]{3}|[0-9a-f]{6})")


def parse_color(text: str) -> tuple[int, int, int]:
    """(r, g, b) in [0, 255] from "#rrggbb", "#rgb" or a CSS colour name; anything else raises InvalidRequest."""
    normalized = text.strip().lower()
    if not (_HEX.fullmatch(normalized) or normalized in ImageColor.colormap):
        raise InvalidRequest(
            f"bg_color {text!r} is not a colour: use #rrggbb, #rgb or a CSS colour name such as 'white'"
        )
    red, green, blue = ImageColor.getrgb(normalized)[:3]
    return red, green, blue


class ColorScene:
    """A plate of one colour, spec.color."""

    name = "color"

    def render(self, spec: SceneSpec, width: int, height: int) -> Scene:
        if spec.color is None:
            raise ValueError("ColorScene needs spec.color")
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[:] = parse_color(spec.color)
        return Scene(rgb=rgb, engine=self.name)
