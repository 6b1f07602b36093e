"""Matting: estimate how much of each pixel is subject, and the subject's own colours.

Engines are small objects behind the `MattingEngine` protocol, created by name with `create_engine`:

    studio   classical, for plain or gradient studio backdrops (`studio`); needs no weights
    u2netp   U²-Net small (4.5 MB) coarse mask + full-resolution refinement (`learned`, `refine`)
    u2net    U²-Net full (176 MB), same refinement; ~0.4 s slower per image on 2 CPU cores
    auto     studio where the border is a backdrop it models, else the learned engine on its `segmenter`:
             u2netp by default (rather than u2net, so that remove-background stays within its 1.5 s budget at
             1 MP on CPU), or any ISNet / BiRefNet ONNX file given by path with its family (`SegmenterSpec`)

Adding one is a module plus a line in `_create`. The learned engines need weight files installed with
`replate models pull` into a models directory the caller names; `segment` replaces the in-process ONNX session
(Triton passes a BLS call to its batched `matting_segmenter` model).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from replate.errors import InvalidRequest, ReplateError
from replate.matting._matte import Matte, MattingEngine
from replate.matting.auto import AutoMatting
from replate.matting.learned import SegmenterMatting
from replate.matting.segmenter import (
    DEFAULT_SEGMENTER,
    SEGMENTER_SIZE,
    U2NET,
    OnnxSegmenter,
    Segment,
    SegmenterSpec,
    coarse_mask,
    segmenter_input,
)
from replate.matting.studio import StudioMatting

__all__ = [
    "ENGINE_NAMES",
    "SEGMENTER_SIZE",
    "AutoMatting",
    "Matte",
    "MattingEngine",
    "OnnxSegmenter",
    "Segment",
    "SegmenterMatting",
    "SegmenterSpec",
    "StudioMatting",
    "coarse_mask",
    "create_engine",
    "estimate_matte",
    "estimate_mattes",
    "segmenter_input",
]

ENGINE_NAMES: tuple[str, ...] = ("auto", "studio", "u2net", "u2netp")
_SEGMENTER_THREADS = min(4, os.cpu_count() or 1)


def create_engine(
    name: str,
    *,
    models_dir: Path | None = None,
    segment: Segment | None = None,
    segmenter: SegmenterSpec = DEFAULT_SEGMENTER,
) -> MattingEngine:
    """A new matting engine by name (see the module docstring).

    models_dir: where `replate models pull` put the weights (unused by studio, and when segment is given).
    segmenter: the segmenter `auto` runs (u2netp by default); the u2net and u2netp engines run their own.
    segment: float32 (N, 3, S, S) -> (N, S, S), used instead of loading the segmenter's ONNX file (S its family's
        size). Unknown names raise InvalidRequest; missing weights raise ModelMissing (code `unavailable`), whose
        message says to run `replate models pull`.
    """
    if name not in ENGINE_NAMES:
        raise InvalidRequest(f"matting engine {name!r} is unknown: use one of {', '.join(ENGINE_NAMES)}")
    if name == "studio":
        return StudioMatting()
    spec = segmenter if name == "auto" else SegmenterSpec(name, U2NET)
    if segment is None:
        segment = OnnxSegmenter(spec.path(models_dir), spec.family, threads=_SEGMENTER_THREADS)
    learned = SegmenterMatting(segment, spec.name, spec.family)
    return AutoMatting(StudioMatting(), learned) if name == "auto" else learned


def estimate_mattes(engine: MattingEngine, images: list[np.ndarray]) -> list[Matte | ReplateError]:
    """The mattes of several images; engines that can (learned, auto) run their segmenter once for all of them. A
    coded failure stands in the list in place of its image's Matte."""
    if isinstance(engine, SegmenterMatting | AutoMatting):
        return engine.estimate_many(images)
    results: list[Matte | ReplateError] = []
    for image in images:
        try:
            results.append(engine.estimate(image))
        except ReplateError as error:
            results.append(error)
    return results


def estimate_matte(image: np.ndarray, engine: str = "studio", *, models_dir: Path | None = None) -> Matte:
    """Matte of image uint8 (H, W, 3) RGB with the named engine, created once per (engine, models_dir)."""
    return _cached_engine(engine, None if models_dir is None else Path(models_dir)).estimate(image)


@functools.lru_cache(maxsize=16)
def _cached_engine(name: str, models_dir: Path | None) -> MattingEngine:
    return create_engine(name, models_dir=models_dir)
