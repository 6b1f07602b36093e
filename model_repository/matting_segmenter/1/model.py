"""Triton adapter for `replate.matting.segmenter.OnnxSegmenter`: IMAGE (N, 3, 320, 320) -> MASK (N, 320, 320).

One batched ONNX Runtime call per execution; the weights come from REPLATE_MODELS_DIR (`replate models pull`).
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from replate.matting.segmenter import OnnxSegmenter
from replate.models import model_path
from replate.triton_adapter import models_dir


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.segment = OnnxSegmenter(model_path(config["parameters"]["model"]["string_value"], models_dir()))

    def execute(self, requests: list) -> list:
        images = [pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy() for request in requests]
        masks = self.segment(np.concatenate(images).astype(np.float32, copy=False))
        responses, start = [], 0
        for image in images:
            count = len(image)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("MASK", masks[start : start + count])]))
            start += count
        return responses
