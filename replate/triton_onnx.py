"""A Triton Python-backend model that runs onnxruntime (CPU) on the `model.onnx` of its version folder.

The `cpu-python` diffusion components written by `python -m export.diffusion` use it through a one-line
`model.py` (`from replate.triton_onnx import TritonPythonModel`). Inputs and outputs are the config's; Triton's
dynamic batcher hands `execute` several requests, which are grouped by their non-batch shapes (requests of one
image size go together) and answered with one onnxruntime call per group. A failing group answers its own
requests with an error; the rest of the batch is unaffected.

Imported only inside Triton's Python backend, where `triton_python_backend_utils` exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

from replate.errors import ReplateError, format_error


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_names = [tensor["name"] for tensor in config["output"]]
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = onnxruntime.SessionOptions()
        threads = config.get("parameters", {}).get("intra_op_threads", {}).get("string_value")
        if threads:
            options.intra_op_num_threads = int(threads)
        # Between calls, idle spinning workers would compete for the cores with the other components' sessions
        # and the denoising loop (measured 3-4x slower whole requests on 2 cores with spinning on).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def execute(self, requests: list[Any]) -> list[Any]:
        groups: dict[tuple[tuple[int, ...], ...], list[int]] = {}
        inputs = [self._inputs(request) for request in requests]
        for index, tensors in enumerate(inputs):
            shapes = tuple(tensors[name].shape[1:] for name in self.input_names)
            groups.setdefault(shapes, []).append(index)
        responses: list[Any] = [None] * len(requests)
        for members in groups.values():
            for index, response in zip(members, self._run_group([inputs[i] for i in members]), strict=True):
                responses[index] = response
        return responses

    def _inputs(self, request: Any) -> dict[str, np.ndarray]:
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}

    def _run_group(self, members: list[dict[str, np.ndarray]]) -> list[Any]:
        """One onnxruntime call for requests whose inputs differ only in batch size; one response each."""
        batch = {name: np.concatenate([tensors[name] for tensors in members]) for name in self.input_names}
        try:
            outputs = self.session.run(self.output_names, batch)
        except Exception as exc:  # onnxruntime raises its own untyped errors: the group's requests get the message
            error = pb_utils.TritonError(
                format_error(ReplateError(f"{self.name}: onnxruntime failed: {exc}")), pb_utils.TritonError.INTERNAL
            )
            return [pb_utils.InferenceResponse(error=error) for _ in members]
        responses, start = [], 0
        for tensors in members:
            stop = start + len(tensors[self.input_names[0]])
            tensors_out = [
                pb_utils.Tensor(name, out[start:stop]) for name, out in zip(self.output_names, outputs, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors_out))
            start = stop
        return responses
