"""The load test's images, generated once per Locust process: studio-like product shots of 0.25 to 1 MP and a
photo to use as a reference scene, JPEG-encoded, with their data URLs ready for JSON bodies."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from replate.imageio import encode_image
from replate.quality.dataset import generate_sample

SHOTS = (("soft_shadow", 1, 0.25), ("product_hard_edge", 3, 0.5), ("product_hard_edge", 2, 1.0))
"""(category, index, megapixels) of replate.quality.dataset samples on a studio or gradient backdrop."""
SCENE = ("soft_shadow", 0, 0.5)
"""A sample on a photo backdrop: its backdrop alone is the reference scene."""


@dataclass(frozen=True)
class Photo:
    name: str
    jpeg: bytes
    data_url: str
    megapixels: float

    @classmethod
    def from_rgb(cls, name: str, rgb: np.ndarray) -> Photo:
        """rgb: uint8 (H, W, 3)."""
        jpeg = encode_image(rgb, "jpeg")
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        return cls(name=name, jpeg=jpeg, data_url=data_url, megapixels=rgb.shape[0] * rgb.shape[1] / 1e6)


@dataclass(frozen=True)
class Payloads:
    shots: tuple[Photo, ...]
    scene: Photo


def make_payloads(seed: int = 7) -> Payloads:
    shots = tuple(
        Photo.from_rgb(sample.name, sample.image)
        for sample in (generate_sample(category, index, mp, seed) for category, index, mp in SHOTS)
    )
    backdrop = generate_sample(*SCENE, seed).background
    scene = Photo.from_rgb("scene", np.clip(np.rint(backdrop), 0, 255).astype(np.uint8))
    return Payloads(shots=shots, scene=scene)
