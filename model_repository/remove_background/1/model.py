"""Triton adapter for `replate.pipeline.remove_background` (matting through BLS)."""

import json

from replate.errors import InvalidRequest
from replate.pipeline import RemoveOptions, options_from_params, remove_background
from replate.triton_adapter import answer_each, bytes_tensor, input_bytes, input_params, json_tensor, matte_from_model


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.estimate_matte = matte_from_model(config["parameters"]["matting_model"]["string_value"])

    def execute(self, requests: list) -> list:
        return answer_each(requests, self.remove)

    def remove(self, request: object) -> list:
        image = input_bytes(request, "IMAGE")
        if not image:
            raise InvalidRequest("IMAGE is empty")
        options = options_from_params(RemoveOptions, input_params(request))
        result = remove_background(image, options, self.estimate_matte)
        return [bytes_tensor("IMAGES", result.images), json_tensor("INFO", result.info)]
