"""Scene value objects and the engine protocol, shared by the engines and the package surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SceneSpec:
    """What the client asked for. reference: uint8 (h, w, 3) RGB photo of any size; color: "#rrggbb", "#rgb" or a
    CSS colour name; seed drives every random choice."""

    prompt: str | None = None
    reference: np.ndarray | None = None
    color: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Scene:
    """rgb: uint8 (H, W, 3) RGB plate; engine: the engine that made it; notes: honest remarks for the client."""

    rgb: np.ndarray
    engine: str
    notes: tuple[str, ...] = ()


class SceneEngine(Protocol):
    """Makes a plate of exactly width x height from a validated SceneSpec."""

    name: str

    def render(self, spec: SceneSpec, width: int, height: int) -> Scene: ...
