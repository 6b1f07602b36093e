"""The loop on an exported ONNX build (export.diffusion, cpu-python target) through onnxruntime (LocalComponents)."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from export.diffusion.build import export_build
from export.diffusion.components import load_components
from export.diffusion.tiny import TinyModels, build_tiny
from replate.diffusion import Build, LocalComponents, generate, load_build
from replate.diffusion.build import ControlNetSpec, IPAdapterSpec
from replate.errors import Unavailable
from tests.unit.replate.test_diffusion_loop import TorchComponents, reference_photo, scene_request

ONNX_TOLERANCE = 2
"""Max |onnxruntime - torch| per uint8 channel value after a whole run (each graph is within 1e-5 of torch)."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyModels, Build]:
    root = tmp_path_factory.mktemp("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers / transformers / torch.onnx deprecations while exporting
        models = build_tiny(root, "sd")
        export_build(
            models.pipeline,
            root / "build",
            target="cpu-python",
            controlnet_dir=models.controlnet,
            ip_adapter_dir=models.ip_adapter,
        )
    return models, load_build(root / "build")


def test_load_build_reads_the_manifest(exported: tuple[TinyModels, Build]) -> None:
    _, build = exported
    manifest = build.manifest
    assert (manifest.family, manifest.engine, manifest.default_size) == ("sd", "diffusion-sd", 64)
    assert manifest.controlnet == ControlNetSpec("canny", 6)
    assert manifest.ip_adapter == IPAdapterSpec(image_size=32, tokens=4)
    assert len(build.tokenizers) == 1 and build.scheduler_config["_class_name"] == "DDIMScheduler"


def test_onnx_build_matches_the_torch_components(exported: tuple[TinyModels, Build]) -> None:
    models, build = exported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_components = TorchComponents(
            load_components(models.pipeline, controlnet_dir=models.controlnet, ip_adapter_dir=models.ip_adapter)
        )
    request = scene_request(seed=4, num_outputs=2, cn_weight=0.9, reference=reference_photo(), scheduler="Euler a")
    onnx = asyncio.run(generate(request, build, LocalComponents(build.path)))
    torch = asyncio.run(generate(request, build, torch_components))
    for ours, reference in zip(onnx.plates, torch.plates, strict=True):
        assert np.abs(ours.astype(np.int16) - reference).max() <= ONNX_TOLERANCE


def test_concurrent_requests_share_the_components(exported: tuple[TinyModels, Build]) -> None:
    _, build = exported
    components = LocalComponents(build.path)
    requests = [scene_request(seed=1), scene_request(seed=2, guidance_scale=1.0)]

    async def both() -> list:
        return await asyncio.gather(*(generate(request, build, components) for request in requests))

    together = asyncio.run(both())
    alone = [asyncio.run(generate(request, build, components)) for request in requests]
    for a, b in zip(together, alone, strict=True):
        assert np.array_equal(a.plates[0], b.plates[0])


def test_a_missing_or_incomplete_build_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="run `python -m export"):
        load_build(tmp_path)
    (tmp_path / "diffusion.json").write_text(json.dumps({"family": "sd"}))
    with pytest.raises(Unavailable, match="incomplete"):
        load_build(tmp_path)
    with pytest.raises(Unavailable, match=r"no diffusion_\*/1/model\.onnx"):
        LocalComponents(tmp_path)


def test_an_unknown_component_is_unavailable(exported: tuple[TinyModels, Build]) -> None:
    components = LocalComponents(exported[1].path)
    with pytest.raises(Unavailable, match="no diffusion_text_encoder_2"):
        asyncio.run(components.infer("diffusion_text_encoder_2", {}, ["hidden_states"]))
