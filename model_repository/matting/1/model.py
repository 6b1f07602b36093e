"""Triton adapter for `replate.matting`: IMAGE uint8 (1, H, W, 3) -> ALPHA, FOREGROUND, SHADING, INFO.

A dynamically batched execution runs the segmenter once for all its images (one BLS call to the batched
`matting_segmenter`), then refines each at full resolution. Inputs are prepared for the segmenter family named by
REPLATE_SEGMENTER_FORMAT (`replate.triton_adapter.segmenter_spec`), which `matting_segmenter` reads too.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from replate.matting import Matte, create_engine, estimate_mattes
from replate.triton_adapter import error_response, json_tensor, models_dir, segment_with_model, segmenter_spec


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        parameters = json.loads(args["model_config"])["parameters"]
        segment = segment_with_model(parameters["segmenter_model"]["string_value"])
        self.engine = create_engine(
            parameters["engine"]["string_value"], models_dir=models_dir(), segment=segment, segmenter=segmenter_spec()
        )

    def execute(self, requests: list) -> list:
        images = [
            np.ascontiguousarray(pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()[0])
            for request in requests
        ]
        return [
            pb_utils.InferenceResponse(output_tensors=_tensors(result))
            if isinstance(result, Matte)
            else error_response(result)
            for result in estimate_mattes(self.engine, images)
        ]


def _tensors(matte: Matte) -> list:
    height, width = matte.alpha.shape
    shading = matte.shading if matte.shading is not None else np.full((height, width), 255, np.uint8)
    info = {"engine": matte.engine, "timings_ms": matte.timings_ms, "has_shading": matte.shading is not None}
    return [
        pb_utils.Tensor("ALPHA", matte.alpha[np.newaxis]),
        pb_utils.Tensor("FOREGROUND", matte.foreground[np.newaxis]),
        pb_utils.Tensor("SHADING", shading[np.newaxis]),
        json_tensor("INFO", info),
    ]
