"""What a client asks of the diffusion stage, validated, with `mode` presets and the working resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from replate.diffusion.schedulers import DEFAULT_SCHEDULER, scheduler_name
from replate.errors import InvalidRequest

Mode = Literal["fast", "balanced", "quality"]

MAX_OUTPUTS = 4
SEED_MAX = 2**32 - 1
SIZE_MULTIPLE = 64


@dataclass(frozen=True)
class ModePreset:
    num_inference_steps: int
    area_fraction: float
    """Of the family's native area (default_size², e.g. 512² for SD, 1024² for SDXL)."""


MODES: dict[str, ModePreset] = {
    "fast": ModePreset(num_inference_steps=20, area_fraction=0.5),
    "balanced": ModePreset(num_inference_steps=30, area_fraction=0.75),
    "quality": ModePreset(num_inference_steps=50, area_fraction=1.0),
}

_RANGES: dict[str, tuple[int | float, int | float]] = {
    "num_inference_steps": (20, 100),
    "guidance_scale": (1.0, 25.0),
    "strength": (0.0, 1.0),
    "cn_weight": (0.0, 1.0),
    "ip_adapter_weight": (0.0, 1.0),
    "num_outputs": (1, MAX_OUTPUTS),
    "seed": (0, SEED_MAX),
}


@dataclass(frozen=True)
class SceneRequest:
    """image: uint8 (H, W, 3) RGB source; alpha: uint8 (H, W) subject matte (255 = subject); reference: uint8
    (h, w, 3) RGB scene photo of any size for the IP-Adapter. Explicit values win over the `mode` preset; outputs
    use seeds seed, seed + 1, ..., seed + num_outputs - 1."""

    image: np.ndarray
    alpha: np.ndarray
    prompt: str = ""
    reference: np.ndarray | None = None
    negative_prompt: str | None = None
    seed: int = 0
    num_outputs: int = 1
    scheduler: str = DEFAULT_SCHEDULER
    mode: Mode = "balanced"
    num_inference_steps: int | None = None
    guidance_scale: float = 7.5
    strength: float = 1.0
    cn_weight: float = 0.5
    ip_adapter_weight: float = 0.6

    def __post_init__(self) -> None:
        _check_images(self.image, self.alpha, self.reference)
        for name in ("prompt", "negative_prompt", "scheduler", "mode"):
            value = getattr(self, name)
            if not isinstance(value, str) and not (name == "negative_prompt" and value is None):
                raise InvalidRequest(f"{name} must be a string, got {value!r}")
        if not self.prompt.strip() and self.reference is None:
            raise InvalidRequest("prompt: a prompt or a reference image is required")
        if self.mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        object.__setattr__(self, "scheduler", scheduler_name(self.scheduler))
        for name, (low, high) in _RANGES.items():
            _check_range(name, getattr(self, name), low, high)

    @property
    def steps(self) -> int:
        return self.num_inference_steps or MODES[self.mode].num_inference_steps

    def working_size(self, default_size: int) -> tuple[int, int]:
        """(width, height) to denoise at: the input's aspect within the mode's share of default_size²."""
        height, width = self.alpha.shape
        return working_size(width, height, default_size**2 * MODES[self.mode].area_fraction)


def scene_request_from_params(
    image: np.ndarray | None, alpha: np.ndarray | None, reference: np.ndarray | None, params: dict[str, Any]
) -> SceneRequest:
    """A SceneRequest from a PARAMS JSON object, refusing unknown keys instead of ignoring them."""
    if image is None or alpha is None:
        raise InvalidRequest("image and alpha are required")
    unknown = set(params) - ({f.name for f in fields(SceneRequest)} - {"image", "alpha", "reference"})
    if unknown:
        raise InvalidRequest(f"unknown parameters: {', '.join(sorted(unknown))}")
    return SceneRequest(image=image, alpha=alpha, reference=reference, **params)


def working_size(width: int, height: int, max_area: float) -> tuple[int, int]:
    """(width, height), multiples of 64, with the aspect of width x height and an area at most max_area (except
    that no side goes below 64)."""
    scale = math.sqrt(max_area / (width * height))
    new_width = max(SIZE_MULTIPLE, _floor(width * scale))
    new_height = max(SIZE_MULTIPLE, _floor(height * scale))
    # A very thin input whose short side was raised to 64 would overshoot the area: shorten its long side.
    if new_width * new_height > max_area and new_width > new_height:
        new_width = max(SIZE_MULTIPLE, _floor(max_area / new_height))
    elif new_width * new_height > max_area:
        new_height = max(SIZE_MULTIPLE, _floor(max_area / new_width))
    return new_width, new_height


def _check_range(name: str, value: object, low: int | float, high: int | float) -> None:
    if value is None:
        return
    integral = isinstance(low, int)
    if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
        kind = "an integer" if integral else "a number"
        raise InvalidRequest(f"{name} must be {kind} between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {value}")


def _floor(value: float) -> int:
    return int(value) // SIZE_MULTIPLE * SIZE_MULTIPLE


def _check_images(image: np.ndarray, alpha: np.ndarray, reference: np.ndarray | None) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise InvalidRequest(f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    if alpha.dtype != np.uint8 or alpha.shape != image.shape[:2]:
        raise InvalidRequest(f"alpha must be uint8 (H, W) matching the image {image.shape[:2]}, got {alpha.shape}")
    if reference is not None and (reference.dtype != np.uint8 or reference.ndim != 3 or reference.shape[2] != 3):
        raise InvalidRequest(f"reference must be uint8 (h, w, 3) RGB, got {reference.dtype} {reference.shape}")
