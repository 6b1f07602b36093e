"""Export the matting segmenter to ONNX and write its Triton model folder for the GPU targets.

    python -m export.matting --onnx ~/.cache/replate/models/u2netp.onnx --target gpu-onnxruntime --out build/
    python -m export.matting --onnx birefnet-general.onnx --format birefnet --target gpu-tensorrt --out build/

Triton's onnxruntime backend needs the config's tensor names to be the graph's, so the ONNX is rewritten once
here (`prepare_segmenter_onnx`): input renamed `IMAGE` FP32 [N, 3, S, S], the first output renamed `MASK`
FP32 [N, 1, S, S] (U²-Net's six side outputs are dropped), batch axis made dynamic; S is the family's size (320 for
u2net, 1024 for isnet and birefnet). The config declares `IMAGE` dims [3, S, S] and `MASK` dims [S, S] with
`reshape: { shape: [ 1, S, S ] }` (the graph's shape), so clients see the same tensors as from the CPU
Python-backend `matting_segmenter`. The `matting` model prepares its inputs for the family named by
REPLATE_SEGMENTER_FORMAT in Triton's environment: set it to the same family.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from replate.matting.segmenter import SEGMENTER_FORMATS, U2NET, SegmenterFormat

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "TOLERANCE",
    "ColourKeySegmenter",
    "TinySegmenter",
    "export_segmenter",
    "prepare_segmenter_onnx",
    "write_segmenter_config",
]

INPUT_NAME = "IMAGE"
OUTPUT_NAME = "MASK"
TOLERANCE = 1e-4  # max |onnxruntime - torch| on the segmenter's output (float32 maps in about [0, 1])
TARGETS = ("gpu-onnxruntime", "gpu-tensorrt")


class TinySegmenter(nn.Module):
    """A random two-level U-Net-like segmenter for tests: (N, 3, S, S) -> (N, 1, S, S) sigmoid maps."""

    def __init__(self, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.down = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.Conv2d(2 * width, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skip = self.down(image)
        return torch.sigmoid(self.head(torch.cat([skip, self.up(self.bottom(skip))], dim=1)))


class ColourKeySegmenter(nn.Module):
    """A segmenter with set weights for tests of the IO conventions of the segmenter families: its map is
    gain * (red - green) of the normalised input (logits, or through a sigmoid), so a red subject on a green backdrop
    comes out as the subject whatever the input size. (N, 3, S, S) -> (N, 1, S, S)."""

    def __init__(self, logits: bool, gain: float = 8.0) -> None:
        super().__init__()
        self.key = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.key.weight.copy_(torch.tensor([gain, -gain, 0.0]).reshape(1, 3, 1, 1))
            self.key.bias.zero_()
        self.logits = logits

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.key(image)
        return logits if self.logits else torch.sigmoid(logits)


def export_segmenter(model: nn.Module, dst: Path, *, opset: int = 17, size: int = 320) -> Path:
    """Export model ((N, 3, size, size) -> (N, 1, size, size)) to ONNX at dst with IO `IMAGE` / `MASK` and a
    dynamic batch axis; raises ValueError when onnxruntime's output differs from torch's by more than TOLERANCE."""
    import onnxruntime

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        # The legacy TorchScript exporter is chosen on purpose (~10x faster than dynamo, one self-contained file);
        # torch warns that it is deprecated on every call.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(dst),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=opset,
            dynamo=False,
        )
    with torch.no_grad():
        expected = model(example).numpy()
    session = onnxruntime.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    actual = session.run([OUTPUT_NAME], {INPUT_NAME: example.numpy()})[0]
    difference = float(np.max(np.abs(actual - expected)))
    if actual.shape != expected.shape or difference > TOLERANCE:
        raise ValueError(f"ONNX export of the segmenter differs from torch: max |diff| {difference:.2e} > {TOLERANCE}")
    return dst


def prepare_segmenter_onnx(src: Path, dst: Path) -> Path:
    """Copy a segmenter ONNX (first input (N|1, 3, S, S), first output (N|1, 1, S, S)) to dst with IO
    renamed `IMAGE` / `MASK`, the other outputs dropped and the batch axis dynamic. Returns dst."""
    model = onnx.load(str(src))
    graph = model.graph
    renames = {graph.input[0].name: INPUT_NAME, graph.output[0].name: OUTPUT_NAME}
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    first_output = graph.output[0]
    del graph.output[1:]
    graph.input[0].name, first_output.name = INPUT_NAME, OUTPUT_NAME
    for value in (graph.input[0], first_output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "N"
    for info in list(graph.value_info):  # shapes inferred for a batch of 1 would contradict the dynamic axis
        graph.value_info.remove(info)
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def write_segmenter_config(
    target: str, model_dir: Path, onnx_path: Path, max_batch_size: int = 8, family: SegmenterFormat = U2NET
) -> Path:
    """Write the Triton model folder `model_dir` (named matting_segmenter by convention): config.pbtxt and
    1/model.onnx (onnx_path, a segmenter of `family`, prepared by `prepare_segmenter_onnx`) for target
    gpu-onnxruntime or gpu-tensorrt (the same ONNX through the TensorRT execution accelerator, FP16). Returns the
    config's path."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    model_dir = Path(model_dir)
    prepare_segmenter_onnx(Path(onnx_path), model_dir / "1" / "model.onnx")
    accelerator = ""
    if target == "gpu-tensorrt":
        accelerator = (
            "optimization { execution_accelerators { gpu_execution_accelerator : [ {\n"
            '  name : "tensorrt"\n'
            '  parameters { key: "precision_mode" value: "FP16" }\n'
            '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            "} ] } }\n"
        )
    size = family.size
    config = (
        f"# Generated by export/matting.py for {target}: a {family.name} segmenter, IMAGE (normalised RGB, see\n"
        "# replate.matting.segmenter_input) -> MASK (raw map; see replate.matting.coarse_mask). Triton's environment\n"
        f"# must say REPLATE_SEGMENTER_FORMAT={family.name} for `matting` to prepare its inputs to match.\n"
        f'name: "{model_dir.name}"\n'
        'backend: "onnxruntime"\n'
        f"max_batch_size: {max_batch_size}\n"
        "input [\n"
        f'  {{ name: "{INPUT_NAME}", data_type: TYPE_FP32, dims: [ 3, {size}, {size} ] }}\n'
        "]\n"
        "output [\n"
        f'  {{ name: "{OUTPUT_NAME}", data_type: TYPE_FP32, dims: [ {size}, {size} ],\n'
        f"    reshape: {{ shape: [ 1, {size}, {size} ] }} }}\n"
        "]\n"
        "dynamic_batching { max_queue_delay_microseconds: 2000 }\n"
        "instance_group [ { kind: KIND_GPU, count: 1 } ]\n"
        f"{accelerator}"
    )
    path = model_dir / "config.pbtxt"
    path.write_text(config)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.matting", description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="segmenter ONNX, e.g. from `replate models pull`")
    parser.add_argument(
        "--format", choices=sorted(SEGMENTER_FORMATS), default=U2NET.name, help="the file's family (default: u2net)"
    )
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="model repository folder to write into")
    parser.add_argument("--name", default="matting_segmenter", help="Triton model name (folder)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    family = SEGMENTER_FORMATS[args.format]
    path = write_segmenter_config(args.target, args.out / args.name, args.onnx, args.max_batch_size, family)
    print(f"wrote {path} and {path.parent / '1' / 'model.onnx'}; Triton needs REPLATE_SEGMENTER_FORMAT={family.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
