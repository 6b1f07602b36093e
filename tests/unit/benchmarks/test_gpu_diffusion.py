"""benchmarks.gpu_diffusion where it can be checked without a GPU: the stop without CUDA or TensorRT, the in-code
architectures against the published models' parameter counts, and the writing of random models (small ones here)
into folders export.diffusion loads."""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmarks import gpu_diffusion
from benchmarks.gpu_diffusion import ARCHITECTURES, Architecture, main, measure_torch, write_models
from export.diffusion.components import load_components, residual_specs

PARAMETERS = {
    # The published checkpoints' parameter counts (the UNets with the inpainting conv_in: 9 channels, +14,400); the
    # SDXL ControlNet's is diffusers/controlnet-canny-sdxl-1.0's ~1.25 B, pinned at the count of this architecture
    ("sdxl", "unet"): 2_567_478_084,
    ("sdxl", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder_2"): 694_659_840,
    ("sdxl", "controlnet"): 1_251_014_160,
    ("sd", "unet"): 859_535_364,
    ("sd", "text_encoder"): 123_060_480,
    ("sd", "vae"): 83_653_863,
    ("sd", "image_encoder"): 632_076_800,
}


def test_without_a_cuda_device_it_stops_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gpu_diffusion, "CUDA_DRIVER", "libcuda-absent.so.1")
    assert main(["--family", "sdxl", "--out", str(tmp_path / "out")]) == 2
    assert "no NVIDIA driver here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_tensorrt_it_stops_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gpu_diffusion, "cuda_device", lambda: "a GPU")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    assert main(["--family", "sd", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "tensorrt Python package" in error and "bench_diffusion" in error
    assert not (tmp_path / "out").exists()


def test_with_tensorrt_11_it_stops_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gpu_diffusion, "cuda_device", lambda: "a GPU")
    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace(__version__="11.4.0", BuilderFlag=SimpleNamespace()))
    assert main(["--family", "sdxl", "--out", str(tmp_path / "out")]) == 2
    assert "use TensorRT 10" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_torch_runtime_without_a_cuda_build_of_torch_stops_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gpu_diffusion, "cuda_device", lambda: "a GPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--family", "sdxl", "--runtime", "torch", "--out", str(tmp_path / "out")]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_torch_runtime_runs_whole_requests_through_the_contract_models(tmp_path: Path) -> None:
    """The torch runtime on the CPU with small models: every contract model timed under its manifest name, and
    whole guided requests (ControlNet, IP-Adapter) through replate.diffusion.generate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = measure_torch(
            tmp_path, _small(ARCHITECTURES["sdxl"]), {"steps": 20}, device="cpu", fp16=False, repeat=1, request_repeat=1
        )
    timed = {entry.model for entry in report.components}
    assert timed == {
        "diffusion_text_encoder",
        "diffusion_text_encoder_2",
        "diffusion_unet",
        "diffusion_controlnet",
        "diffusion_image_encoder",
        "diffusion_vae_encoder",
        "diffusion_vae_decoder",
    }
    assert report.request.runs == 1 and report.request.p50_ms > 0
    assert set(report.stages_ms) >= {"denoise", "total"}
    assert (tmp_path / "build-sdxl-torch" / "diffusion.json").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["build-sdxl-torch"]  # the model files are gone


@pytest.mark.parametrize("family", ["sdxl", "sd"])
def test_the_architectures_are_the_published_ones(family: str) -> None:
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    architecture = ARCHITECTURES[family]
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers / transformers deprecations
        models = {
            "unet": UNet2DConditionModel(**architecture.unet),
            "vae": AutoencoderKL(**architecture.vae),
            "controlnet": ControlNetModel(**architecture.controlnet_config()),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**architecture.image_encoder)),
        }
        for name, config in architecture.text_encoders.items():
            model_class = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
            models[name] = model_class(CLIPTextConfig(**config))
    for (expected_family, name), count in PARAMETERS.items():
        if expected_family == family:
            assert sum(p.numel() for p in models[name].parameters()) == count, name


def test_write_models_replaces_every_model_in_folders_export_loads(tmp_path: Path) -> None:
    architecture = _small(ARCHITECTURES["sdxl"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = write_models(tmp_path, architecture)
        components = load_components(
            models.pipeline, controlnet_dir=models.controlnet, ip_adapter_dir=models.ip_adapter
        )
    unet = components["diffusion_unet"]
    assert unet.unet.config.transformer_layers_per_block == [1, 2]
    assert unet.inputs["encoder_hidden_states"].shape[-1] == 64 and unet.inputs["text_embeds"].shape[-1] == 48
    controlnet = components["diffusion_controlnet"]
    assert controlnet.inputs["sample"].shape[1] == 4
    assert controlnet.outputs == residual_specs(unet.unet)
    assert components["diffusion_text_encoder_2"].outputs["hidden_states"].shape[-1] == 48
    assert components["diffusion_image_encoder"].inputs["pixel_values"].shape[-1] == 28


def _small(architecture: Architecture) -> Architecture:
    """The SDXL architecture's shape (two text encoders, text_time conditioning, deeper transformers further down)
    with few channels."""
    text = {"hidden_size": 16, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    return replace(
        architecture,
        unet=architecture.unet
        | {
            "sample_size": 8,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "transformer_layers_per_block": (1, 2),
            "attention_head_dim": (2, 4),
            "cross_attention_dim": 64,
            "norm_num_groups": 8,
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 48,
        },
        vae=architecture.vae | {"block_out_channels": (16, 16, 32, 32), "layers_per_block": 1, "norm_num_groups": 8},
        text_encoders={
            "text_encoder": architecture.text_encoders["text_encoder"] | text,
            "text_encoder_2": architecture.text_encoders["text_encoder_2"]
            | text
            | {"hidden_size": 48, "projection_dim": 48},
        },
        image_encoder=architecture.image_encoder | text | {"image_size": 28, "patch_size": 14},
        controlnet={"conditioning_embedding_out_channels": (8, 8, 16, 16)},
    )
