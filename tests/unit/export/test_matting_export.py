from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.matting import (
    INPUT_NAME,
    OUTPUT_NAME,
    ColourKeySegmenter,
    TinySegmenter,
    export_segmenter,
    main,
    prepare_segmenter_onnx,
    write_segmenter_config,
)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_segmenter(TinySegmenter(seed=3), tmp_path_factory.mktemp("export") / "tiny.onnx")


def test_export_matches_torch_with_a_dynamic_batch(tiny_onnx: Path) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    batch = torch.rand(3, 3, 320, 320, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = TinySegmenter(seed=3)(batch).numpy()
    actual = session.run(None, {INPUT_NAME: batch.numpy()})[0]
    assert actual.shape == (3, 1, 320, 320)
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_export_refuses_a_model_onnx_cannot_reproduce(tmp_path: Path) -> None:
    class Drifting(TinySegmenter):
        """Differs between the traced call and the check: the mismatch must be caught, not shipped."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return super().forward(image) + (0.5 if self.calls > 1 else 0.0)

    with pytest.raises(ValueError, match="differs from torch"):
        export_segmenter(Drifting(), tmp_path / "drift.onnx", size=32)


def test_prepare_renames_io_and_makes_the_batch_dynamic(tiny_onnx: Path, tmp_path: Path) -> None:
    import onnxruntime

    model = onnx.load(str(tiny_onnx))  # make it look like a rembg file: other names, a fixed batch of 1
    renames = {INPUT_NAME: "input.1", OUTPUT_NAME: "1959"}
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    model.graph.input[0].name, model.graph.output[0].name = "input.1", "1959"
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    rembg_like = tmp_path / "rembg_like.onnx"
    onnx.save(model, str(rembg_like))

    prepared = prepare_segmenter_onnx(rembg_like, tmp_path / "prepared.onnx")
    session = onnxruntime.InferenceSession(str(prepared), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(size=(2, 3, 320, 320)).astype(np.float32)
    reference = onnxruntime.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0], reference.run(None, {INPUT_NAME: batch})[0], atol=1e-6
    )


@pytest.mark.parametrize("target", ["gpu-onnxruntime", "gpu-tensorrt"])
def test_config_for_each_gpu_target(target: str, tiny_onnx: Path, tmp_path: Path) -> None:
    config_path = write_segmenter_config(target, tmp_path / "matting_segmenter", tiny_onnx)
    text = config_path.read_text()
    assert (tmp_path / "matting_segmenter" / "1" / "model.onnx").is_file()
    assert re.search(r'^name: "matting_segmenter"$', text, re.M)
    assert re.search(r'^backend: "onnxruntime"$', text, re.M)
    assert re.search(r"^max_batch_size: 8$", text, re.M)
    assert re.search(r'name: "IMAGE", data_type: TYPE_FP32, dims: \[ 3, 320, 320 \]', text)
    assert re.search(
        r'name: "MASK", data_type: TYPE_FP32, dims: \[ 320, 320 \],\s+reshape: \{ shape: \[ 1, 320, 320 \] \}', text
    )
    assert "dynamic_batching" in text and "KIND_GPU" in text
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")
    has_trt = 'name : "tensorrt"' in text and '"precision_mode" value: "FP16"' in text
    assert has_trt == (target == "gpu-tensorrt")


def test_cli_and_unknown_target(tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--onnx", str(tiny_onnx), "--target", "gpu-onnxruntime", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "matting_segmenter" / "config.pbtxt").is_file()
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ValueError, match="target"):
        write_segmenter_config("cpu", tmp_path / "x", tiny_onnx)


def test_cli_writes_a_birefnet_folder_with_its_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyed = export_segmenter(ColourKeySegmenter(logits=True), tmp_path / "keyed.onnx", size=1024)
    argv = ["--onnx", str(keyed), "--format", "birefnet", "--target", "gpu-tensorrt", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    text = (tmp_path / "out" / "matting_segmenter" / "config.pbtxt").read_text()
    assert re.search(r'name: "IMAGE", data_type: TYPE_FP32, dims: \[ 3, 1024, 1024 \]', text)
    assert re.search(r"dims: \[ 1024, 1024 \],\s+reshape: \{ shape: \[ 1, 1024, 1024 \] \}", text)
    assert "REPLATE_SEGMENTER_FORMAT=birefnet" in text
    assert "REPLATE_SEGMENTER_FORMAT=birefnet" in capsys.readouterr().out
