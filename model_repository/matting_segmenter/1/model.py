"""Triton adapter for `replate.matting.segmenter.OnnxSegmenter`: IMAGE (N, 3, S, S) -> MASK (N, S, S).

One batched ONNX Runtime call per execution. The weights are REPLATE_SEGMENTER, of the family REPLATE_SEGMENTER_FORMAT
(`replate.triton_adapter.segmenter_spec`): u2netp from REPLATE_MODELS_DIR (`replate models pull`) unless set.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from replate.matting.segmenter import OnnxSegmenter
from replate.triton_adapter import models_dir, segmenter_spec


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        spec = segmenter_spec()
        self.segment = OnnxSegmenter(spec.path(models_dir()), spec.family)

    def execute(self, requests: list) -> list:
        images = [pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy() for request in requests]
        masks = self.segment(np.concatenate(images).astype(np.float32, copy=False))
        responses, start = [], 0
        for image in images:
            count = len(image)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("MASK", masks[start : start + count])]))
            start += count
        return responses
