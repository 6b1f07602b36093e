"""Triton adapter for `replate.pipeline.remove_background`; the mattes of a whole batch come from `matting`."""

import json

from replate.errors import InvalidRequest
from replate.pipeline import RemoveOptions, Steps, options_from_params, remove_background_steps
from replate.triton_adapter import answer_batch, input_bytes, input_params


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.matting_model = json.loads(args["model_config"])["parameters"]["matting_model"]["string_value"]

    async def execute(self, requests: list) -> list:
        return await answer_batch(requests, self.start, self.matting_model)

    def start(self, request: object) -> Steps:
        image = input_bytes(request, "IMAGE")
        if not image:
            raise InvalidRequest("IMAGE is empty")
        return remove_background_steps(image, options_from_params(RemoveOptions, input_params(request)))
