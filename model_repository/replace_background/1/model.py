"""Triton adapter for `replate.pipeline.replace_background`; the mattes of a whole batch come from `matting`, and
prompted scenes from `scene_diffusion` when a diffusion build is loaded beside this repository."""

import json

import triton_python_backend_utils as pb_utils

from replate.errors import InvalidRequest
from replate.harmonize import warm_up
from replate.pipeline import ReplaceOptions, Steps, options_from_params, replace_background_steps
from replate.triton_adapter import answer_batch, input_bytes, input_params


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        parameters = json.loads(args["model_config"])["parameters"]
        self.matting_model = parameters["matting_model"]["string_value"]
        self.scene_model = parameters["scene_model"]["string_value"]
        warm_up()

    async def execute(self, requests: list) -> list:
        # Asked per batch, not once: the diffusion build may be loaded (or unloaded) after this model.
        generates_scenes = pb_utils.is_model_ready(self.scene_model)
        return await answer_batch(
            requests, lambda request: self.start(request, generates_scenes), self.matting_model, self.scene_model
        )

    def start(self, request: object, generates_scenes: bool) -> Steps:
        image = input_bytes(request, "IMAGE")
        if not image:
            raise InvalidRequest("IMAGE is empty")
        options = options_from_params(ReplaceOptions, input_params(request))
        scene_image = input_bytes(request, "SCENE_IMAGE")
        return replace_background_steps(image, options, scene_image, generates_scenes=generates_scenes)
