"""TensorRT for the `gpu-tensorrt` target: one optimisation profile per component and the engine build.

The profile covers batch sizes 1..max_batch and every image size up to `MAX_MEGAPIXELS` in the supported aspect
ratios (`resolutions`: for each ratio, the largest multiple-of-64 size within 5% of it), and down to `MIN_SIDE_PX`.
Height and width are independent dynamic axes, so the profile is their bounding box; its `opt` is the family's
default size. Inputs whose every dimension is static (the text encoders' ids but for batch) still get the batch
range. `check_profile` compares the profile with the ONNX graph's inputs as polygraphy reads them (no GPU needed).

The engine is built with the `tensorrt` Python API where it imports (a GPU machine); elsewhere `build_engine`
raises `TensorRTUnavailable`, which the CLI reports in one line with exit code 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from export.diffusion.components import Component, axis_sizes

__all__ = [
    "ASPECT_RATIOS",
    "MAX_MEGAPIXELS",
    "MIN_SIDE_PX",
    "EngineBuildError",
    "Profile",
    "TensorRTUnavailable",
    "build_engine",
    "check_profile",
    "optimisation_profile",
    "require_tensorrt",
    "resolutions",
]

ASPECT_RATIOS = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16))  # width:height
MAX_MEGAPIXELS = 1.05  # SDXL's 1024 x 1024 and its same-area buckets (1344 x 768, ...) fit
MIN_SIDE_PX = 256
SIZE_STEP_PX = 64
RATIO_SLACK = 0.05

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input name -> (min, opt, max)


class TensorRTUnavailable(RuntimeError):
    """The tensorrt Python package does not import here: build the engines on a machine with a GPU and TensorRT."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX or build the engine; the message carries its errors."""


def resolutions(max_megapixels: float = MAX_MEGAPIXELS) -> dict[tuple[int, int], tuple[int, int]]:
    """For each aspect ratio (w, h), the largest (width_px, height_px), multiples of 64, within 5% of the ratio and
    at most max_megapixels."""
    limit = max_megapixels * 1e6
    sizes = {}
    for ratio_w, ratio_h in ASPECT_RATIOS:
        target = ratio_w / ratio_h
        candidates = [
            (width, height)
            for height in range(SIZE_STEP_PX, int(limit**0.5 * 2), SIZE_STEP_PX)
            for width in range(SIZE_STEP_PX, int(limit / height) + 1, SIZE_STEP_PX)
            if abs(width / height / target - 1) <= RATIO_SLACK
        ]
        sizes[(ratio_w, ratio_h)] = max(
            candidates, key=lambda size: (size[0] * size[1], -abs(size[0] / size[1] - target))
        )
    return sizes


def optimisation_profile(
    component: Component, *, max_batch: int, default_size_px: int, vae_scale_factor: int = 8
) -> Profile:
    """min / opt / max shapes of every input: batch 1 / min(2, max_batch) / max_batch; images from MIN_SIDE_PX
    square to the bounding box of `resolutions()`, opt at default_size_px square."""
    largest = resolutions().values()
    bounds = {
        "min": axis_sizes(1, MIN_SIDE_PX, MIN_SIDE_PX, vae_scale_factor),
        "opt": axis_sizes(min(2, max_batch), default_size_px, default_size_px, vae_scale_factor),
        "max": axis_sizes(max_batch, max(h for _, h in largest), max(w for w, _ in largest), vae_scale_factor),
    }
    return {
        name: (spec.concrete(bounds["min"]), spec.concrete(bounds["opt"]), spec.concrete(bounds["max"]))
        for name, spec in component.inputs.items()
    }


def check_profile(onnx_path: Path, profile: Mapping[str, tuple[Shape, Shape, Shape]]) -> None:
    """Raise ValueError unless the profile names every input of the ONNX graph (as polygraphy reads it) with
    shapes of its rank that agree with its static dimensions and satisfy min <= opt <= max."""
    from polygraphy.backend.onnx import onnx_from_path
    from polygraphy.backend.onnx.util import get_input_metadata

    graph_inputs = get_input_metadata(onnx_from_path(str(onnx_path)).graph)
    missing = sorted(set(graph_inputs) - set(profile))
    if missing:
        raise ValueError(f"{onnx_path.name}: the profile has no shapes for the dynamic inputs {missing}")
    for name, meta in graph_inputs.items():
        low, opt, high = profile[name]
        for shape in (low, opt, high):
            static_ok = all(not isinstance(d, int) or d < 0 or d == s for d, s in zip(meta.shape, shape, strict=False))
            if len(shape) != len(meta.shape) or not static_ok:
                raise ValueError(f"{onnx_path.name}: profile shape {shape} of {name} does not fit {meta.shape}")
        if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
            raise ValueError(f"{onnx_path.name}: profile of {name} is not min <= opt <= max: {low} {opt} {high}")


def require_tensorrt() -> ModuleType:
    """The tensorrt module, or TensorRTUnavailable."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            "gpu-tensorrt needs the tensorrt Python package (a GPU machine with TensorRT 10): "
            "export --target gpu-onnxruntime here, or run this command there"
        ) from exc
    return tensorrt


def build_engine(onnx_path: Path, plan_path: Path, profile: Profile, *, fp16: bool) -> Path:
    """Build a serialized TensorRT engine (model.plan) from onnx_path with one optimisation profile."""
    trt = require_tensorrt()
    check_profile(onnx_path, profile)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    shapes = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        shapes.set_shape(name, low, opt, high)
    config.add_optimization_profile(shapes)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    plan_path = Path(plan_path)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(plan)
    return plan_path
