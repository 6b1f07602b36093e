from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from export.matting import TinySegmenter, export_segmenter
from replate.matting.segmenter import SEGMENTER_SIZE, OnnxSegmenter, coarse_mask, segmenter_input


def rembg_normalize(image: np.ndarray) -> np.ndarray:
    """rembg's sessions/base.py `normalize`, transcribed: float32 (3, 320, 320)."""
    im = Image.fromarray(image).convert("RGB").resize((320, 320), Image.Resampling.LANCZOS)
    ary = np.array(im)
    ary = ary / np.max(ary)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    tmp = np.zeros((ary.shape[0], ary.shape[1], 3))
    for channel in range(3):
        tmp[:, :, channel] = (ary[:, :, channel] - mean[channel]) / std[channel]
    return tmp.transpose((2, 0, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_segmenter(TinySegmenter(), tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_input_matches_rembg_preprocessing() -> None:
    image = np.random.default_rng(0).integers(0, 200, (240, 410, 3), dtype=np.uint8)
    batch = segmenter_input(image)
    assert batch.dtype == np.float32 and batch.shape == (3, SEGMENTER_SIZE, SEGMENTER_SIZE)
    np.testing.assert_allclose(batch, rembg_normalize(image), atol=1e-5)


def test_input_of_a_black_image_is_finite() -> None:
    batch = segmenter_input(np.zeros((50, 60, 3), np.uint8))
    assert np.isfinite(batch).all()
    with pytest.raises(ValueError, match="uint8"):
        segmenter_input(np.zeros((50, 60), np.uint8))


def test_coarse_mask_normalises_and_resizes() -> None:
    raw = np.linspace(-3, 5, SEGMENTER_SIZE * SEGMENTER_SIZE, dtype=np.float32).reshape(1, 320, 320)
    mask = coarse_mask(raw, 200, 500)
    assert mask.dtype == np.float32 and mask.shape == (200, 500)
    assert mask.min() == pytest.approx(0.0, abs=1e-3) and mask.max() == pytest.approx(1.0, abs=1e-3)
    assert mask[0].mean() < mask[-1].mean()  # the map grows downwards, and so does the mask
    assert (coarse_mask(np.full((320, 320), 7.0, np.float32), 10, 10) == 0).all()
    with pytest.raises(ValueError, match="320"):
        coarse_mask(np.zeros((2, 320, 320), np.float32), 10, 10)


def test_onnx_segmenter_runs_a_batch(tiny_onnx: Path) -> None:
    segment = OnnxSegmenter(tiny_onnx)
    assert segment.name == "tiny"
    rng = np.random.default_rng(0)
    batch = np.stack([segmenter_input(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)) for _ in range(3)])
    maps = segment(batch)
    assert maps.dtype == np.float32 and maps.shape == (3, 320, 320)
    assert not np.allclose(maps[0], maps[2])  # different images, different maps: the network really ran
    np.testing.assert_allclose(segment(batch[1:2])[0], maps[1], atol=1e-5)
    with pytest.raises(ValueError, match="batch"):
        segment(batch[0])


def test_onnx_segmenter_with_a_fixed_batch_of_one(tiny_onnx: Path, tmp_path: Path) -> None:
    # The rembg files declare a batch of exactly 1: the segmenter then runs the images one by one.
    model = onnx.load(str(tiny_onnx))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    batch = np.random.default_rng(1).normal(size=(2, 3, 320, 320)).astype(np.float32)
    np.testing.assert_allclose(OnnxSegmenter(fixed)(batch), OnnxSegmenter(tiny_onnx)(batch), atol=1e-5)
