"""The `scene_diffusion` Triton model: one `generate` per request, all of a batch's loops running concurrently, each
component call a BLS request, so that the steps of concurrent requests meet in the components' dynamic batchers.

Imported only inside Triton's Python backend (the build's `scene_diffusion/1/model.py` re-exports the class).
Tensors: IMAGE UINT8 [H, W, 3], ALPHA UINT8 [H, W], optional REFERENCE UINT8 [h, w, 3], PARAMS BYTES (JSON object
of `SceneRequest` fields) -> SCENES UINT8 [N, H, W, 3], INFO BYTES (JSON); with max_batch_size > 0 each has a
leading batch axis of 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from replate.diffusion.build import load_build
from replate.diffusion.loop import generate
from replate.diffusion.request import scene_request_from_params
from replate.errors import ReplateError, parse_error
from replate.triton_adapter import error_response, input_params


class BlsComponents:
    """`Components` over Triton's BLS: each call is one async inference request to the component model.

    With max_batch_size > 0 Triton has no tensor of shape [B] alone: the contract's per-item scalars (timestep,
    conditioning_scale, ip_scale) travel as [B, 1], which the component configs reshape back to [B]."""

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=model,
            inputs=[
                pb_utils.Tensor(name, value.reshape(-1, 1) if value.ndim == 1 else value)
                for name, value in inputs.items()
            ],
            requested_output_names=list(outputs),
        )
        response = await request.async_exec()
        if response.has_error():
            raise parse_error(response.error().message())
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.build = load_build(Path(config["parameters"]["diffusion_dir"]["string_value"]))
        self.batched = config.get("max_batch_size", 0) > 0
        self.components = BlsComponents()

    async def execute(self, requests: list) -> list:
        return list(await asyncio.gather(*(self.answer(request) for request in requests)))

    async def answer(self, request: Any) -> Any:
        try:
            image, alpha, reference = (self.array(request, name) for name in ("IMAGE", "ALPHA", "REFERENCE"))
            scene_request = scene_request_from_params(image, alpha, reference, input_params(request))
            result = await generate(scene_request, self.build, self.components)
        except ReplateError as error:
            return error_response(error)
        except Exception as exc:  # one request's bug must not fail the other requests of the batch
            return error_response(ReplateError(f"scene generation failed: {exc!r}"))
        scenes, info = np.stack(result.plates), np.array([json.dumps(result.info).encode()], dtype=np.object_)
        if self.batched:
            scenes, info = scenes[np.newaxis], info[np.newaxis]
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("SCENES", scenes), pb_utils.Tensor("INFO", info)]
        )

    def array(self, request: Any, name: str) -> np.ndarray | None:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return None
        array = tensor.as_numpy()
        return array[0] if self.batched else array
