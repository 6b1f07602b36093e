"""Export of the diffusion stage: tiny test models, torch reference components, ONNX, Triton model folders."""
