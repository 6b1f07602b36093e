"""The tiny cpu-python diffusion build served by real Triton: every component model loads and answers as
onnxruntime does in-process, also when requests of two image sizes share a dynamic batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.diffusion.build import MANIFEST
from export.diffusion.components import axis_sizes
from gateway.tritonserver import TritonServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def triton(diffusion_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    run_dir = tmp_path_factory.mktemp("triton")
    with TritonServer(run_dir, run_dir, model_repositories=(diffusion_build,)) as server:
        yield server


def dim_size(dim: int | str, sizes: dict[str, int]) -> int:
    """A manifest dimension ("B", "h/2", 77) at concrete axis sizes."""
    if isinstance(dim, int):
        return dim
    axis, _, divisor = dim.partition("/")
    return sizes[axis] // int(divisor or 1)


def random_inputs(specs: dict[str, Any], sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, spec in specs.items():
        shape = [dim_size(dim, sizes) for dim in spec["shape"]]
        if spec["dtype"] == "int64":
            arrays[name] = rng.integers(0, 500, size=shape, dtype=np.int64)
        else:
            arrays[name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
    return arrays


def infer(url: str, model: str, arrays: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    inputs = []
    for name, array in arrays.items():
        sent = array[:, None] if array.ndim == 1 else array  # [B] travels as [B, 1] (config dims [1], reshape [])
        tensor = grpcclient.InferInput(name, list(sent.shape), "INT64" if sent.dtype == np.int64 else "FP32")
        tensor.set_data_from_numpy(sent)
        inputs.append(tensor)
    result = client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(name) for name in outputs])
    return {name: result.as_numpy(name) for name in outputs}


def test_every_component_model_matches_onnxruntime(diffusion_build: Path, triton: TritonServer) -> None:
    import onnxruntime

    manifest = json.loads((diffusion_build / MANIFEST).read_text())
    for name, entry in manifest["components"].items():
        session = onnxruntime.InferenceSession(str(diffusion_build / name / "1" / "model.onnx"))
        arrays = random_inputs(entry["inputs"], axis_sizes(2, 64, 96), seed=len(name))
        expected = dict(zip(entry["outputs"], session.run(None, arrays), strict=True))
        actual = infer(triton.grpc_url, name, arrays, list(entry["outputs"]))
        for output, value in expected.items():
            np.testing.assert_allclose(actual[output], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}.{output}")


def test_requests_of_two_sizes_in_one_batch_are_answered_each(diffusion_build: Path, triton: TritonServer) -> None:
    import onnxruntime

    entry = json.loads((diffusion_build / MANIFEST).read_text())["components"]["diffusion_unet"]
    session = onnxruntime.InferenceSession(str(diffusion_build / "diffusion_unet" / "1" / "model.onnx"))
    requests = [random_inputs(entry["inputs"], axis_sizes(1 + i % 2, 64 * (1 + i % 2), 64), seed=i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda arrays: infer(triton.grpc_url, "diffusion_unet", arrays, ["noise_pred"]), requests)
        )
    for arrays, answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer["noise_pred"], session.run(None, arrays)[0], rtol=1e-5, atol=1e-5)


def test_scene_model_loads(triton: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    assert client.is_model_ready("scene_diffusion")
