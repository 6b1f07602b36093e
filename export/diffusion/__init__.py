"""Export of the diffusion stage (docs/diffusion.md): tiny test models, torch reference components, ONNX with
parity checks, TensorRT engines and the Triton build folder. `python -m export.diffusion --help` for the CLI."""

from export.diffusion.build import export_build
from export.diffusion.tiny import TinyModels, build_tiny

__all__ = ["TinyModels", "build_tiny", "export_build"]
