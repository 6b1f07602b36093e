"""Write a diffusion build folder (docs/diffusion.md): every component exported, checked and configured for one
target, the tokenizer(s) and scheduler config, the `scene_diffusion` model and the manifest `diffusion.json`.

The build folder is itself a Triton model repository, and Triton refuses any top-level folder that is not a
model (measured with tritonserver 2.51: "Poll failed for model directory 'tokenizer'"), so the tokenizer(s) and
the scheduler config live inside `scene_diffusion/` (Triton ignores non-numeric folders of a model) and the
manifest's `assets` names them relative to the build folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from diffusers import AutoencoderKL, UNet2DConditionModel

from export.diffusion.components import (
    TEXT_LENGTH,
    Component,
    ControlNet,
    ImageEncoder,
    UNet,
    VaeDecoder,
    VaeEncoder,
    controlnet_kind,
    family_of,
    iter_components,
)
from export.diffusion.onnx_export import Parity, check_parity, convert_to_fp16, export_component
from export.diffusion.tensorrt import build_engine, optimisation_profile, require_tensorrt
from export.diffusion.triton import SCENE_MODEL_NAME, TARGETS, write_component_config, write_scene_folder

__all__ = ["ASSETS", "MANIFEST", "add_component", "export_build", "finish_build", "new_manifest"]

MANIFEST = "diffusion.json"
ASSETS = {
    "tokenizer": f"{SCENE_MODEL_NAME}/tokenizer",
    "tokenizer_2": f"{SCENE_MODEL_NAME}/tokenizer_2",
    "scheduler": f"{SCENE_MODEL_NAME}/scheduler",
}
CONTROLNET_KINDS = ("canny", "depth")


def export_build(
    pipeline_dir: Path,
    out: Path,
    *,
    target: str,
    controlnet_dir: Path | None = None,
    controlnet_kind_name: str | None = None,
    ip_adapter_dir: Path | None = None,
    max_batch: int = 8,
    fp16: bool = False,
) -> dict[str, Any]:
    """Export the diffusers inpainting pipeline at pipeline_dir (with an optional ControlNet and IP-Adapter) into
    the build folder out for target; returns the manifest it wrote. Raises ParityError when an ONNX graph does not
    reproduce its torch component, TensorRTUnavailable for gpu-tensorrt without TensorRT (before any work)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if fp16 and target == "cpu-python":
        raise ValueError("--fp16 is for the GPU targets: the cpu-python models run FP32")
    if target == "gpu-tensorrt":
        require_tensorrt()
    pipeline_dir, out = Path(pipeline_dir), Path(out)
    manifest = new_manifest(pipeline_dir, target, fp16=fp16, controlnet_dir=controlnet_dir, kind=controlnet_kind_name)
    out.mkdir(parents=True, exist_ok=True)
    components = iter_components(pipeline_dir, controlnet_dir=controlnet_dir, ip_adapter_dir=ip_adapter_dir)
    with tempfile.TemporaryDirectory(prefix="replate-onnx-") as work:
        for component in components:
            dtype = add_component(manifest, component)
            parity = _export_component(component, out, target, Path(work), manifest, max_batch=max_batch, dtype=dtype)
            manifest["parity"][component.name] = parity.as_json()
    write_scene_folder(out, target, manifest["engine"])
    finish_build(pipeline_dir, out, manifest)
    return manifest


def new_manifest(
    pipeline_dir: Path, target: str, *, fp16: bool, controlnet_dir: Path | None = None, kind: str | None = None
) -> dict[str, Any]:
    """The manifest of a build of pipeline_dir (and controlnet_dir, of `kind` unless its folder says) before any
    component is added."""
    vae_config = AutoencoderKL.load_config(pipeline_dir, subfolder="vae", local_files_only=True)
    manifest = _manifest_head(pipeline_dir, target, fp16, vae_config)
    if controlnet_dir is not None:
        kind = kind or controlnet_kind(controlnet_dir)
        if kind not in CONTROLNET_KINDS:
            raise ValueError(f"say which ControlNet this is (--controlnet-kind {' or '.join(CONTROLNET_KINDS)})")
        manifest["controlnet"] = {"kind": kind}
    return manifest


def add_component(manifest: dict[str, Any], component: Component) -> str:
    """Describe component in the manifest; returns the dtype it runs in (FP16 builds keep an upcast VAE in FP32)."""
    _describe(manifest, component)
    # diffusers runs an upcast VAE in FP32 inside FP16 pipelines (it overflows in FP16): so does the build
    upcast = isinstance(component, VaeEncoder | VaeDecoder) and component.vae.config.get("force_upcast", True)
    dtype = "float16" if manifest["dtype"] == "float16" and not upcast else "float32"
    manifest["components"][component.name]["dtype"] = dtype
    return dtype


def finish_build(pipeline_dir: Path, out: Path, manifest: dict[str, Any]) -> None:
    """The tokenizer(s), the scheduler config and the manifest itself, written last: a build folder with a
    manifest is complete."""
    _copy_assets(pipeline_dir, out)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _manifest_head(pipeline_dir: Path, target: str, fp16: bool, vae: dict[str, Any]) -> dict[str, Any]:
    unet = UNet2DConditionModel.load_config(pipeline_dir, subfolder="unet", local_files_only=True)
    if unet["in_channels"] != 9:
        raise ValueError(f"{pipeline_dir} is not an inpainting pipeline: its UNet takes {unet['in_channels']} channels")
    family = family_of(pipeline_dir)
    vae_scale_factor = 2 ** (len(vae["block_out_channels"]) - 1)
    return {
        "family": family,
        "engine": f"diffusion-{family}",
        "source": str(pipeline_dir.resolve()),
        "target": target,
        "dtype": "float16" if fp16 else "float32",
        "vae_scale_factor": vae_scale_factor,
        "scaling_factor": vae.get("scaling_factor", 0.18215),
        "latent_channels": vae["latent_channels"],
        "unet_in_channels": unet["in_channels"],
        "text_max_length": TEXT_LENGTH,
        "default_size": unet["sample_size"] * vae_scale_factor,
        "controlnet": None,
        "ip_adapter": None,
        "assets": {key: path for key, path in ASSETS.items() if (pipeline_dir / key).is_dir()},
        "components": {},
        "parity": {},
    }


def _describe(manifest: dict[str, Any], component: Component) -> None:
    manifest["components"][component.name] = {
        "inputs": {name: spec.as_json() for name, spec in component.inputs.items()},
        "outputs": {name: spec.as_json() for name, spec in component.outputs.items()},
    }
    if isinstance(component, ControlNet):
        unet_inputs = manifest["components"][UNet.name]["inputs"]
        mismatched = [n for n, spec in component.outputs.items() if unet_inputs.get(n) != spec.as_json()]
        if mismatched:
            raise ValueError(f"the ControlNet's residuals do not fit the UNet: {mismatched}")
        manifest["controlnet"]["residuals"] = len(component.outputs) - 1
    if isinstance(component, ImageEncoder):
        _, tokens, _ = component.outputs["ip_tokens"].shape
        manifest["ip_adapter"] = {"image_size": component.inputs["pixel_values"].shape[-1], "tokens": tokens}


def _export_component(
    component: Component, out: Path, target: str, work: Path, manifest: dict[str, Any], *, max_batch: int, dtype: str
) -> Parity:
    """ONNX (checked against torch), then the target's model file and config; returns the parity of the graph
    that ships (for gpu-tensorrt the FP32 ONNX the engine is built from)."""
    folder = out / component.name
    onnx_path = work / f"{component.name}.onnx" if target == "gpu-tensorrt" else folder / "1" / "model.onnx"
    export_component(component, onnx_path)
    parity = check_parity(component, onnx_path)
    if target == "gpu-onnxruntime" and dtype == "float16":
        parity = check_parity(component, convert_to_fp16(onnx_path, onnx_path), dtype=dtype)
    if target == "gpu-tensorrt":
        profile = optimisation_profile(
            component,
            max_batch=max_batch,
            default_size_px=manifest["default_size"],
            vae_scale_factor=manifest["vae_scale_factor"],
        )
        build_engine(onnx_path, folder / "1" / "model.plan", profile, fp16=dtype == "float16")
    write_component_config(component, folder, target, max_batch_size=max_batch)
    return parity


def _copy_assets(pipeline_dir: Path, out: Path) -> None:
    for key, relative in ASSETS.items():
        source = pipeline_dir / key
        if not source.is_dir():
            continue
        if key == "scheduler":
            (out / relative).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / "scheduler_config.json", out / relative / "scheduler_config.json")
        else:
            shutil.copytree(source, out / relative, dirs_exist_ok=True)
