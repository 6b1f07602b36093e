"""Export a diffusers inpainting pipeline (+ ControlNet, IP-Adapter) into a diffusion build folder for Triton.

    python -m export.diffusion --pipeline DIR [--controlnet DIR] [--ip-adapter DIR] \\
        --target cpu-python|gpu-onnxruntime|gpu-tensorrt --out BUILD [--max-batch N] [--fp16]
    python -m export.diffusion --tiny sd|sdxl --target cpu-python --out BUILD

Exit codes: 0 built, 1 an ONNX graph failed its parity check, 2 usage (including gpu-tensorrt without TensorRT).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from export.diffusion.build import CONTROLNET_KINDS, MANIFEST, export_build
from export.diffusion.onnx_export import ParityError
from export.diffusion.tensorrt import TensorRTUnavailable
from export.diffusion.tiny import build_tiny
from export.diffusion.triton import TARGETS


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.tiny:
            with tempfile.TemporaryDirectory(prefix="replate-tiny-") as tmp:
                tiny = build_tiny(Path(tmp), args.tiny)
                manifest = _build(args, tiny.pipeline, tiny.controlnet, tiny.ip_adapter)
        else:
            manifest = _build(args, args.pipeline, args.controlnet, args.ip_adapter)
    except (TensorRTUnavailable, ValueError) as exc:
        code = 1 if isinstance(exc, ParityError) else 2
        print(f"error: {exc}", file=sys.stderr)
        return code
    print(parity_table(manifest))
    print(f"wrote {args.out / MANIFEST} and {len(manifest['components'])} component models")
    return 0


def _build(args: argparse.Namespace, pipeline: Path, controlnet: Path | None, ip_adapter: Path | None) -> dict:
    return export_build(
        pipeline,
        args.out,
        target=args.target,
        controlnet_dir=controlnet,
        controlnet_kind_name=args.controlnet_kind,
        ip_adapter_dir=ip_adapter,
        max_batch=args.max_batch,
        fp16=args.fp16,
    )


def parity_table(manifest: dict[str, Any]) -> str:
    """The manifest's parity numbers as a fixed-width table, one component a line."""
    lines = [f"{'component':<26} {'dtype':<8} {'max_abs':>9} {'max_rel':>9} {'tolerance':>9}"]
    for name, parity in manifest["parity"].items():
        dtype = manifest["components"][name]["dtype"]
        lines.append(
            f"{name:<26} {dtype:<8} {parity['max_abs']:>9.2e} {parity['max_rel']:>9.2e} {parity['tolerance']:>9.0e}"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.diffusion", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pipeline", type=Path, help="diffusers inpainting pipeline folder (model_index.json)")
    source.add_argument("--tiny", choices=("sd", "sdxl"), help="build tiny random models first (tests, smoke runs)")
    parser.add_argument("--controlnet", type=Path, help="diffusers ControlNetModel folder")
    parser.add_argument("--controlnet-kind", choices=CONTROLNET_KINDS, help="default: the folder's replate.json")
    parser.add_argument("--ip-adapter", type=Path, help="folder with image_encoder/ and the IP-Adapter weights file")
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="build folder (a Triton model repository)")
    parser.add_argument("--max-batch", type=int, default=8, help="Triton max_batch_size and TensorRT profile max")
    parser.add_argument("--fp16", action="store_true", help="FP16 inside the GPU targets' graphs")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
