"""Export of replate's learned components to ONNX and Triton model folders (one function per component)."""
