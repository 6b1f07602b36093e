"""The coarse segmenter of the learned engine: a saliency network at a fixed square size, pre- and post-processing.

Three families are understood, each by its conventions as rembg runs them (`SegmenterFormat`):

    u2net     U²-Net (u2netp, u2net; installable with `replate models pull`): 320 x 320, ImageNet mean and std
    isnet     ISNet / DIS (isnet-general-use): 1024 x 1024, ImageNet mean, std 1
    birefnet  BiRefNet (general, lite, portrait...): 1024 x 1024, ImageNet mean and std, output is logits

Pre-processing is rembg's (sessions/base.py `normalize`): resize to the family's size with PIL's Lanczos filter,
divide by the image maximum, subtract the mean and divide by the std, channels first. Post-processing takes the
first output's map (through a sigmoid for a family that gives logits), min-max normalises it and resizes it to the
image; unlike rembg it stays float and is resized bilinearly (rembg rounds to uint8 and resizes with Lanczos, whose
ringing overshoots around the outline), because the map is the input of the refinement, not the final alpha.

`Segment` is the seam between the model and the engine: in-process it is an `OnnxSegmenter`, inside Triton a BLS
call to the dynamically batched `matting_segmenter` model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from replate.models import is_weights_file, weights_path

__all__ = [
    "BIREFNET",
    "DEFAULT_SEGMENTER",
    "ISNET",
    "SEGMENTER_FORMATS",
    "SEGMENTER_SIZE",
    "U2NET",
    "OnnxSegmenter",
    "Segment",
    "SegmenterFormat",
    "SegmenterSpec",
    "coarse_mask",
    "segmenter_format",
    "segmenter_input",
]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmenterFormat:
    """What a segmenter family takes and gives: input float32 (N, 3, size, size) normalised by mean and std after
    dividing by the image maximum; first output (N, 1, size, size), logits when `logits` (a sigmoid comes first)."""

    name: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logits: bool = False


U2NET = SegmenterFormat("u2net", 320, _IMAGENET_MEAN, _IMAGENET_STD)
ISNET = SegmenterFormat("isnet", 1024, _IMAGENET_MEAN, (1.0, 1.0, 1.0))
BIREFNET = SegmenterFormat("birefnet", 1024, _IMAGENET_MEAN, _IMAGENET_STD, logits=True)
SEGMENTER_FORMATS: dict[str, SegmenterFormat] = {family.name: family for family in (U2NET, ISNET, BIREFNET)}
SEGMENTER_SIZE = U2NET.size


@dataclass(frozen=True)
class SegmenterSpec:
    """Which segmenter the learned engine runs: `weights` is a model name `replate models pull` installs (u2netp,
    u2net) or the path of an ONNX file (ISNet, BiRefNet... exported elsewhere), of the given family."""

    weights: str = "u2netp"
    family: SegmenterFormat = U2NET

    @property
    def name(self) -> str:
        """The label of the engine's results: the model name, or the file's stem."""
        return Path(self.weights).stem if is_weights_file(self.weights) else self.weights

    def path(self, models_dir: Path | None) -> Path:
        """The ONNX file to load; raises ModelMissing when it is not installed (see replate.models.weights_path)."""
        return weights_path(self.weights, models_dir)


DEFAULT_SEGMENTER = SegmenterSpec()
"""u2netp, the segmenter `auto` runs unless told otherwise."""

Segment = Callable[[np.ndarray], np.ndarray]
"""float32 (N, 3, S, S) segmenter inputs -> float32 (N, S, S) raw maps (any range), S the format's size."""


def segmenter_format(name: str) -> SegmenterFormat:
    """The family called name (u2net, isnet, birefnet); ValueError for any other."""
    try:
        return SEGMENTER_FORMATS[name]
    except KeyError:
        raise ValueError(f"segmenter format {name!r} is unknown: use one of {', '.join(SEGMENTER_FORMATS)}") from None


def segmenter_input(image: np.ndarray, family: SegmenterFormat = U2NET) -> np.ndarray:
    """image: uint8 (H, W, 3) RGB. Returns float32 (3, S, S), normalised as the family expects."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    size = (family.size, family.size)
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    peak = float(resized.max())
    scaled = resized / (peak if peak > 0 else 1.0)
    mean, std = np.asarray(family.mean, np.float32), np.asarray(family.std, np.float32)
    return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1), dtype=np.float32)


def coarse_mask(raw: np.ndarray, height: int, width: int, family: SegmenterFormat = U2NET) -> np.ndarray:
    """raw: float32 (S, S) or (1, S, S), one segmenter output map. Returns float32 (H, W) in [0, 1]: through a
    sigmoid for a family that gives logits, min-max normalised (a constant map gives all zeros), resized bilinearly
    to height x width."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 3 and raw.shape[0] == 1:
        raw = raw[0]
    expected = (family.size, family.size)
    if raw.shape != expected:
        raise ValueError(f"raw {family.name} segmenter output must be {expected} or (1, *{expected}), got {raw.shape}")
    if family.logits:
        raw = 1.0 / (1.0 + np.exp(-np.clip(raw, -60.0, 60.0)))
    low, high = float(raw.min()), float(raw.max())
    normalised = (raw - low) / (high - low) if high > low else np.zeros_like(raw)
    resized = cv2.resize(normalised, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0).astype(np.float32, copy=False)


class OnnxSegmenter:
    """A segmenter ONNX file of one of the `SEGMENTER_FORMATS` families, run by onnxruntime on the CPU; a `Segment`.

    The graph's first input takes float32 (N, 3, S, S) and its first output is (N, 1, S, S), S the family's size
    (a graph whose input declares another size is refused here, not at the first request). Graphs with a fixed batch
    of 1 (the rembg files) are run one image at a time.
    """

    def __init__(self, path: Path, family: SegmenterFormat = U2NET, threads: int = 1) -> None:
        import onnxruntime  # deferred: importing replate.matting must not load onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        first = self._session.get_inputs()[0]
        spatial = [dim for dim in first.shape[2:] if isinstance(dim, int)]
        if any(dim != family.size for dim in spatial):
            raise ValueError(
                f"{path} takes {first.shape[2:]} inputs, but the {family.name} format is {family.size} x "
                f"{family.size}: name the format the file was exported for"
            )
        self._input_name = first.name
        self._fixed_batch = first.shape[0] == 1
        self._output_name = self._session.get_outputs()[0].name
        self.family = family
        self.name = Path(path).stem

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """batch: float32 (N, 3, S, S). Returns float32 (N, S, S), the first output's only channel."""
        size = self.family.size
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(f"segmenter batch must be (N, 3, {size}, {size}), got {batch.shape}")
        chunks = [batch[i : i + 1] for i in range(len(batch))] if self._fixed_batch else [batch]
        outputs = [self._session.run([self._output_name], {self._input_name: chunk})[0] for chunk in chunks]
        maps = np.concatenate(outputs, axis=0).astype(np.float32, copy=False)
        return maps.reshape(len(batch), size, size)
