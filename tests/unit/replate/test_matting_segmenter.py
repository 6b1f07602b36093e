from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from export.matting import ColourKeySegmenter, TinySegmenter, export_segmenter
from replate.matting import SegmenterSpec, create_engine
from replate.matting.segmenter import (
    BIREFNET,
    ISNET,
    SEGMENTER_SIZE,
    U2NET,
    OnnxSegmenter,
    coarse_mask,
    segmenter_format,
    segmenter_input,
)
from replate.models import ModelMissing
from tests.synthetic import red_disc_on_green_texture

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def rembg_normalize(
    image: np.ndarray, mean: tuple[float, ...] = IMAGENET[0], std: tuple[float, ...] = IMAGENET[1], size: int = 320
) -> np.ndarray:
    """rembg's sessions/base.py `normalize`, transcribed: float32 (3, size, size)."""
    im = Image.fromarray(image).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    ary = np.array(im)
    ary = ary / np.max(ary)
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


@pytest.mark.parametrize(
    ("family", "mean", "std"),
    [(ISNET, IMAGENET[0], (1.0, 1.0, 1.0)), (BIREFNET, *IMAGENET)],  # rembg's dis_general_use and birefnet_general
)
def test_input_of_the_1024_families_matches_rembg(family, mean, std) -> None:
    image = np.random.default_rng(2).integers(0, 230, (300, 200, 3), dtype=np.uint8)
    batch = segmenter_input(image, family)
    assert batch.shape == (3, 1024, 1024) and family.size == 1024
    np.testing.assert_allclose(batch, rembg_normalize(image, mean, std, 1024), atol=1e-5)


def test_logits_go_through_a_sigmoid_before_min_max() -> None:
    raw = np.linspace(-6, 2, 1024 * 1024, dtype=np.float32).reshape(1024, 1024)
    squashed = 1.0 / (1.0 + np.exp(-raw))
    expected = (squashed - squashed.min()) / (squashed.max() - squashed.min())
    mask = coarse_mask(raw, 1024, 1024, BIREFNET)
    np.testing.assert_allclose(mask, expected, atol=1e-5)
    # min-max of the logits alone would be linear in them: the middle row would sit at 0.5, not near 0.1
    assert mask[512].mean() < 0.2
    with pytest.raises(ValueError, match="1024"):
        coarse_mask(np.zeros((320, 320), np.float32), 10, 10, BIREFNET)


def test_unknown_format_names_the_known_ones() -> None:
    assert segmenter_format("isnet") is ISNET and segmenter_format("u2net") is U2NET
    with pytest.raises(ValueError, match="u2net, isnet, birefnet"):
        segmenter_format("sam")


def test_a_file_of_another_size_is_refused_at_load(tiny_onnx: Path) -> None:
    with pytest.raises(ValueError, match="birefnet format is 1024"):
        OnnxSegmenter(tiny_onnx, BIREFNET)  # exported at 320 x 320


def test_spec_finds_named_models_and_files(tiny_onnx: Path, tmp_path: Path) -> None:
    assert SegmenterSpec(str(tiny_onnx), BIREFNET).name == "tiny"
    assert SegmenterSpec(str(tiny_onnx)).path(None) == tiny_onnx
    assert SegmenterSpec().name == "u2netp"
    with pytest.raises(ModelMissing, match="does not exist"):
        SegmenterSpec(str(tmp_path / "gone.onnx")).path(None)
    with pytest.raises(ModelMissing, match="replate models pull --model u2netp"):
        SegmenterSpec().path(tmp_path)


@pytest.fixture(scope="module")
def keyed_birefnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keyed")
    return export_segmenter(ColourKeySegmenter(logits=True), folder / "keyed-birefnet.onnx", size=1024)


def test_auto_runs_a_birefnet_file_given_by_path(keyed_birefnet: Path) -> None:
    image, disc = red_disc_on_green_texture(300, 460)
    engine = create_engine("auto", segmenter=SegmenterSpec(str(keyed_birefnet), BIREFNET))
    matte = engine.estimate(image)
    assert matte.engine == "keyed-birefnet+refine"
    assert matte.alpha.shape == image.shape[:2]  # full resolution, not the segmenter's 1024 x 1024
    agreement = ((matte.alpha >= 128) == disc).mean()
    assert agreement > 0.99, agreement
