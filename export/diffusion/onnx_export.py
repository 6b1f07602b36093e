"""Trace a `Component` to ONNX (dynamic batch and spatial axes) and check the ONNX against torch.

Parity: the same random inputs through torch and onnxruntime (CPU) at two shapes, the traced one and another batch
and size, so that a dimension frozen by the tracer fails too. `max_abs` is max |onnx - torch|; `max_rel` is max_abs
over max |torch| of the same output (an element-wise ratio explodes near zero). A graph fails when max_rel exceeds
the tolerance of its dtype.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from export.diffusion.components import Axis, Component, axis_sizes, example_inputs

__all__ = ["OPSET", "TOLERANCE", "Parity", "ParityError", "check_parity", "convert_to_fp16", "export_component"]

OPSET = 17
TOLERANCE = {"float32": 1e-3, "float16": 3e-2}  # on max_rel; fp16 keeps about 3 significant digits per op
TRACE_SIZES = axis_sizes(batch=2, height_px=64, width_px=64)
CHECK_SIZES = (TRACE_SIZES, axis_sizes(batch=3, height_px=128, width_px=64))


class ParityError(ValueError):
    """The exported graph does not reproduce the torch component within the tolerance."""


@dataclass(frozen=True)
class Parity:
    """Worst agreement of a component's ONNX with torch over every output and checked shape."""

    max_abs: float
    max_rel: float
    tolerance: float

    def as_json(self) -> dict[str, float]:
        return asdict(self)


def export_component(component: Component, dst: Path, *, opset: int = OPSET) -> Path:
    """Trace component to ONNX at dst (FP32), every Axis of its specs a named dynamic dimension. Returns dst."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    example = example_inputs(component, TRACE_SIZES)
    dynamic_axes = {
        name: {index: str(dim) for index, dim in enumerate(spec.shape) if isinstance(dim, Axis)}
        for name, spec in (component.inputs | component.outputs).items()
    }
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy TorchScript exporter on purpose (~10x faster than dynamo, one self-contained file below 2 GB).
        # It warns that it is deprecated, the tracer warns about diffusers' Python branches on shapes (parity at a
        # second shape catches a frozen one), and constant folding warns about slices it leaves to the runtime.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            component.eval(),
            tuple(example[name] for name in component.inputs),
            str(dst),
            input_names=list(component.inputs),
            output_names=list(component.outputs),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    return dst


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """FP16 weights and arithmetic inside, FP32 inputs and outputs (the Triton boundary stays FP32). Returns dst."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst


def check_parity(
    component: Component, onnx_path: Path, *, dtype: str = "float32", sizes: tuple[Mapping[str, int], ...] = CHECK_SIZES
) -> Parity:
    """Compare onnxruntime on onnx_path with torch on random inputs at each of `sizes`; raise ParityError when
    max_rel exceeds TOLERANCE[dtype] or a shape differs, else return the numbers."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tolerance = TOLERANCE[dtype]
    max_abs = max_rel = 0.0
    for seed, shape_sizes in enumerate(sizes):
        inputs = example_inputs(component, shape_sizes, seed=seed + 1)
        expected = component.run(inputs)
        actual = session.run(list(component.outputs), {name: tensor.numpy() for name, tensor in inputs.items()})
        for name, value in zip(component.outputs, actual, strict=True):
            reference = expected[name].numpy()
            if value.shape != reference.shape:
                raise ParityError(f"{component.name}.{name}: ONNX shape {value.shape} != torch {reference.shape}")
            difference = float(np.max(np.abs(value.astype(np.float64) - reference)))
            max_abs = max(max_abs, difference)
            max_rel = max(max_rel, difference / max(float(np.max(np.abs(reference))), 1e-12))
    if not max_rel <= tolerance:  # also catches NaN
        raise ParityError(
            f"{component.name}: ONNX differs from torch: max_rel {max_rel:.2e} > {tolerance:.0e}, max_abs {max_abs:.2e}"
        )
    return Parity(max_abs=max_abs, max_rel=max_rel, tolerance=tolerance)
