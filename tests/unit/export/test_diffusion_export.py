from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.diffusion.__main__ import main
from export.diffusion.build import MANIFEST, export_build
from export.diffusion.components import TextEncoder, load_components
from export.diffusion.onnx_export import TOLERANCE, ParityError, check_parity, export_component
from export.diffusion.tensorrt import TensorRTUnavailable
from export.diffusion.tiny import TinyModels, build_tiny
from export.diffusion.triton import COMPONENT_MODEL_PY, SCENE_MODEL_PY, TARGETS, component_config


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)


@pytest.fixture(scope="module")
def built(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("build")
    manifest = export_build(
        tiny.pipeline, out, target="cpu-python", controlnet_dir=tiny.controlnet, ip_adapter_dir=tiny.ip_adapter
    )
    return out, manifest


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_tiny_build_passes_parity_and_writes_the_contract_layout(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    assert json.loads((out / MANIFEST).read_text()) == manifest
    sdxl = manifest["family"] == "sdxl"
    names = ["diffusion_text_encoder", *(["diffusion_text_encoder_2"] if sdxl else []), "diffusion_unet"]
    names += ["diffusion_controlnet", "diffusion_image_encoder", "diffusion_vae_encoder", "diffusion_vae_decoder"]
    assert list(manifest["components"]) == names == list(manifest["parity"])
    for name in names:
        assert manifest["parity"][name]["max_rel"] <= TOLERANCE["float32"]
        assert (out / name / "1" / "model.onnx").is_file()
        assert (out / name / "1" / "model.py").read_text() == COMPONENT_MODEL_PY
        config = parse_config(out / name / "config.pbtxt")
        assert config.name == name and config.backend == "python" and config.max_batch_size == 8
        assert [t.name for t in config.input] == list(manifest["components"][name]["inputs"])
        assert [t.name for t in config.output] == list(manifest["components"][name]["outputs"])
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert manifest["engine"] == f"diffusion-{manifest['family']}" and manifest["target"] == "cpu-python"
    assert manifest["vae_scale_factor"] == 8 and manifest["unet_in_channels"] == 9
    assert manifest["scaling_factor"] == (0.13025 if sdxl else 0.18215)
    assert manifest["controlnet"] == {"kind": "canny", "residuals": 6}
    assert manifest["ip_adapter"] == {"image_size": 32, "tokens": 4}
    unet_inputs = manifest["components"]["diffusion_unet"]["inputs"]
    assert unet_inputs["sample"]["shape"] == ["B", 9, "h", "w"]
    assert unet_inputs["down_residual_3"]["shape"] == ["B", 32, "h/2", "w/2"]
    assert unet_inputs["ip_scale"] == {"dtype": "float32", "shape": ["B"]}


def test_assets_and_the_scene_model(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    for key in ("tokenizer", "tokenizer_2") if manifest["family"] == "sdxl" else ("tokenizer",):
        assert (out / manifest["assets"][key] / "tokenizer_config.json").is_file()
    assert (out / manifest["assets"]["scheduler"] / "scheduler_config.json").is_file()
    assert (out / "scene_diffusion" / "1" / "model.py").read_text() == SCENE_MODEL_PY
    config = parse_config(out / "scene_diffusion" / "config.pbtxt")
    assert config.backend == "python" and config.max_batch_size == 8 and config.HasField("dynamic_batching")
    assert {t.name: (t.optional, t.allow_ragged_batch) for t in config.input} == {
        "IMAGE": (False, True),
        "ALPHA": (False, True),
        "REFERENCE": (True, True),
        "PARAMS": (False, False),
    }
    assert [t.name for t in config.output] == ["SCENES", "INFO"]
    assert config.parameters["diffusion_dir"].string_value == str(out.resolve())


def test_onnx_matches_onnxruntime_at_a_new_batch_and_size(built: tuple[Path, dict[str, Any]]) -> None:
    import onnxruntime

    out, manifest = built
    session = onnxruntime.InferenceSession(str(out / "diffusion_vae_decoder" / "1" / "model.onnx"))
    latent = np.random.default_rng(0).normal(size=(3, 4, 5, 7)).astype(np.float32)
    (image,) = session.run(None, {"latent": latent})
    assert image.shape == (3, 3, 40, 56)
    assert manifest["components"]["diffusion_vae_decoder"]["outputs"]["image"]["shape"] == ["B", 3, "H", "W"]


@pytest.mark.parametrize("target", TARGETS)
def test_configs_parse_for_every_target(tiny: TinyModels, target: str) -> None:
    platforms = {"cpu-python": "", "gpu-onnxruntime": "onnxruntime_onnx", "gpu-tensorrt": "tensorrt_plan"}
    components = load_components(tiny.pipeline, controlnet_dir=tiny.controlnet, ip_adapter_dir=tiny.ip_adapter)
    for component in components.values():
        config = text_format.Parse(
            component_config(component, target, max_batch_size=4), model_config_pb2.ModelConfig()
        )
        assert config.platform == platforms[target]
        assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
        gpu = target != "cpu-python"
        assert config.instance_group[0].kind == (config.instance_group[0].KIND_GPU if gpu else 2)
        for tensor in config.input:
            spec = component.inputs[tensor.name]
            if len(spec.shape) == 1:
                assert list(tensor.dims) == [1] and list(tensor.reshape.shape) == []
            else:
                assert len(tensor.dims) == len(spec.shape) - 1


def test_parity_fails_when_the_onnx_is_wrong(tiny: TinyModels, tmp_path: Path) -> None:
    encoder = TextEncoder.load(tiny.pipeline)
    path = export_component(encoder, tmp_path / "text_encoder.onnx")
    assert check_parity(encoder, path).max_rel < 1e-5
    model = onnx.load(str(path))
    weight = max(model.graph.initializer, key=lambda tensor: len(tensor.raw_data))  # the token embedding
    values = onnx.numpy_helper.to_array(weight)
    values = values + np.random.default_rng(0).normal(scale=0.05, size=values.shape).astype(values.dtype)
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(path))
    with pytest.raises(ParityError, match="diffusion_text_encoder: ONNX differs from torch"):
        check_parity(encoder, path)


def test_fp16_for_onnxruntime_keeps_fp32_io_and_the_vae_in_fp32(tiny: TinyModels, tmp_path: Path) -> None:
    if (tiny.pipeline / "text_encoder_2").is_dir():
        pytest.skip("one family is enough for the fp16 path")
    manifest = export_build(tiny.pipeline, tmp_path, target="gpu-onnxruntime", fp16=True)
    assert manifest["dtype"] == "float16"
    dtypes = {name: entry["dtype"] for name, entry in manifest["components"].items()}
    assert dtypes["diffusion_unet"] == "float16" and dtypes["diffusion_vae_decoder"] == "float32"
    assert manifest["parity"]["diffusion_unet"]["max_rel"] <= TOLERANCE["float16"]
    config = parse_config(tmp_path / "diffusion_unet" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert not (tmp_path / "diffusion_unet" / "1" / "model.py").exists()


def test_tensorrt_target_fails_clearly_without_tensorrt(
    tiny: TinyModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TensorRTUnavailable, match="tensorrt Python package"):
        export_build(tiny.pipeline, tmp_path, target="gpu-tensorrt")
    assert main(["--pipeline", str(tiny.pipeline), "--target", "gpu-tensorrt", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: gpu-tensorrt needs the tensorrt Python package") and error.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_cli_refuses_fp16_on_the_cpu(tiny: TinyModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--pipeline", str(tiny.pipeline), "--target", "cpu-python", "--out", str(tmp_path), "--fp16"]) == 2
    assert "GPU targets" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_builds_tiny_models_and_prints_the_parity_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--tiny", "sd", "--target", "cpu-python", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["component", "dtype", "max_abs", "max_rel", "tolerance"]
    assert [line.split()[0] for line in lines[1:7]] == list(json.loads((tmp_path / MANIFEST).read_text())["parity"])
