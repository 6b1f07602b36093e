from __future__ import annotations

from pathlib import Path

import pytest

from export.diffusion.components import axis_sizes, load_components
from export.diffusion.onnx_export import export_component
from export.diffusion.tensorrt import (
    ASPECT_RATIOS,
    MAX_MEGAPIXELS,
    TensorRTUnavailable,
    build_engine,
    check_profile,
    optimisation_profile,
    resolutions,
)
from export.diffusion.tiny import build_tiny


def test_resolutions_are_the_largest_multiples_of_64_per_aspect_ratio() -> None:
    sizes = resolutions()
    assert list(sizes) == list(ASPECT_RATIOS)
    for (ratio_w, ratio_h), (width, height) in sizes.items():
        assert width % 64 == 0 and height % 64 == 0
        assert width * height <= MAX_MEGAPIXELS * 1e6
        assert abs(width / height / (ratio_w / ratio_h) - 1) <= 0.05
        assert (width + 64) * (height + 64) > MAX_MEGAPIXELS * 1e6  # nothing larger of that shape would fit
    assert sizes[(1, 1)] == (1024, 1024)
    assert sizes[(16, 9)] == (1344, 768) and sizes[(9, 16)] == (768, 1344)


@pytest.fixture(scope="module")
def sdxl_components(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tiny = build_tiny(tmp_path_factory.mktemp("tiny"), "sdxl")
    return load_components(tiny.pipeline, controlnet_dir=tiny.controlnet, ip_adapter_dir=tiny.ip_adapter)


def test_profiles_cover_every_batch_and_resolution(sdxl_components: dict) -> None:
    for component in sdxl_components.values():
        profile = optimisation_profile(component, max_batch=8, default_size_px=1024)
        assert list(profile) == list(component.inputs)
        for width, height in resolutions().values():
            for batch in (1, 8):
                sizes = axis_sizes(batch, height, width)
                for name, (low, _opt, high) in profile.items():
                    shape = component.inputs[name].concrete(sizes)
                    assert all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True)), (name, shape)
    unet = optimisation_profile(sdxl_components["diffusion_unet"], max_batch=8, default_size_px=1024)
    assert unet["sample"] == ((1, 9, 32, 32), (2, 9, 128, 128), (8, 9, 168, 168))
    assert unet["down_residual_3"][2] == (8, 32, 84, 84)
    assert all(d % 8 == 0 for d in unet["sample"][2][2:])  # latents of 64 px multiples


def test_check_profile_reads_the_onnx_inputs(sdxl_components: dict, tmp_path: Path) -> None:
    unet = sdxl_components["diffusion_unet"]
    path = export_component(unet, tmp_path / "unet.onnx")
    profile = optimisation_profile(unet, max_batch=4, default_size_px=512)
    check_profile(path, profile)
    with pytest.raises(ValueError, match="no shapes for the dynamic inputs \\['ip_scale'\\]"):
        check_profile(path, {name: shapes for name, shapes in profile.items() if name != "ip_scale"})
    wrong = dict(profile, sample=((1, 4, 32, 32), (1, 4, 64, 64), (4, 4, 128, 128)))
    with pytest.raises(ValueError, match="does not fit"):
        check_profile(path, wrong)


def test_engine_build_needs_tensorrt(tmp_path: Path) -> None:
    with pytest.raises(TensorRTUnavailable, match="GPU machine"):
        build_engine(tmp_path / "model.onnx", tmp_path / "model.plan", {}, fp16=True)
