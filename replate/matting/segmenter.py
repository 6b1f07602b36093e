"""The coarse segmenter of the learned engine: U²-Net (u2netp, u2net) at 320 x 320, pre- and post-processing.

Pre-processing is rembg's (sessions/base.py `normalize`): resize to 320 x 320 with PIL's Lanczos filter, divide by
the image maximum, subtract the ImageNet mean and divide by its std, channels first. Post-processing min-max
normalises the first output and resizes it to the image; unlike rembg it stays float and is resized bilinearly
(rembg rounds to uint8 and resizes with Lanczos, whose ringing overshoots around the outline), because the map is
the input of the refinement, not the final alpha.

`Segment` is the seam between the model and the engine: in-process it is an `OnnxSegmenter`, inside Triton a BLS
call to the dynamically batched `matting_segmenter` model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["SEGMENTER_SIZE", "OnnxSegmenter", "Segment", "coarse_mask", "segmenter_input"]

SEGMENTER_SIZE = 320
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

Segment = Callable[[np.ndarray], np.ndarray]
"""float32 (N, 3, 320, 320) segmenter inputs -> float32 (N, 320, 320) raw saliency maps (any range)."""


def segmenter_input(image: np.ndarray) -> np.ndarray:
    """image: uint8 (H, W, 3) RGB. Returns float32 (3, 320, 320), ImageNet-normalised (roughly [-2.1, 2.7])."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    size = (SEGMENTER_SIZE, SEGMENTER_SIZE)
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    peak = float(resized.max())
    scaled = resized / (peak if peak > 0 else 1.0)
    return np.ascontiguousarray(((scaled - _MEAN) / _STD).transpose(2, 0, 1), dtype=np.float32)


def coarse_mask(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """raw: float32 (320, 320) or (1, 320, 320), one segmenter output map. Returns float32 (H, W) in [0, 1]:
    min-max normalised (a constant map gives all zeros), resized bilinearly to height x width."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 3 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.ndim != 2:
        raise ValueError(f"raw segmenter output must be (320, 320) or (1, 320, 320), got {raw.shape}")
    low, high = float(raw.min()), float(raw.max())
    normalised = (raw - low) / (high - low) if high > low else np.zeros_like(raw)
    resized = cv2.resize(normalised, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0).astype(np.float32, copy=False)


class OnnxSegmenter:
    """A U²-Net-style ONNX file run by onnxruntime on the CPU; a `Segment`.

    The graph's first input takes float32 (N, 3, 320, 320) and its first output is (N, 1, 320, 320). Graphs with a
    fixed batch of 1 (the rembg files) are run one image at a time.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime  # deferred: importing replate.matting must not load onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        first = self._session.get_inputs()[0]
        self._input_name = first.name
        self._fixed_batch = first.shape[0] == 1
        self._output_name = self._session.get_outputs()[0].name
        self.name = Path(path).stem

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """batch: float32 (N, 3, 320, 320). Returns float32 (N, 320, 320), the first output's only channel."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, SEGMENTER_SIZE, SEGMENTER_SIZE):
            raise ValueError(f"segmenter batch must be (N, 3, {SEGMENTER_SIZE}, {SEGMENTER_SIZE}), got {batch.shape}")
        chunks = [batch[i : i + 1] for i in range(len(batch))] if self._fixed_batch else [batch]
        outputs = [self._session.run([self._output_name], {self._input_name: chunk})[0] for chunk in chunks]
        maps = np.concatenate(outputs, axis=0).astype(np.float32, copy=False)
        return maps.reshape(len(batch), SEGMENTER_SIZE, SEGMENTER_SIZE)
