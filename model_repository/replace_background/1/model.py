"""Triton adapter for `replate.pipeline.replace_background` (matting through BLS)."""

import json

from replate.errors import InvalidRequest
from replate.pipeline import ReplaceOptions, options_from_params, replace_background
from replate.triton_adapter import answer_each, bytes_tensor, input_bytes, input_params, json_tensor, matte_from_model


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.estimate_matte = matte_from_model(config["parameters"]["matting_model"]["string_value"])

    def execute(self, requests: list) -> list:
        return answer_each(requests, self.replace)

    def replace(self, request: object) -> list:
        image = input_bytes(request, "IMAGE")
        if not image:
            raise InvalidRequest("IMAGE is empty")
        options = options_from_params(ReplaceOptions, input_params(request))
        result = replace_background(image, options, self.estimate_matte, input_bytes(request, "SCENE_IMAGE"))
        return [bytes_tensor("IMAGES", result.images), json_tensor("INFO", result.info)]
