"""What every `model_repository/*/1/model.py` shares: reading tensors, coded errors, the BLS matting call.

Imported only inside Triton's Python backend, where `triton_python_backend_utils` exists. Nothing here is worth
a unit test of its own: the logic lives in the pure `replate` modules it forwards to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from replate.errors import InvalidRequest, ReplateError, format_error, parse_error
from replate.matting import Matte


def answer_each(requests: list[Any], handle: Callable[[Any], list[Any]]) -> list[Any]:
    """One response per request; a coded failure answers only the request that caused it."""
    responses = []
    for request in requests:
        try:
            responses.append(pb_utils.InferenceResponse(output_tensors=handle(request)))
        except ReplateError as error:
            code = _triton_code(error)
            responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(format_error(error), code)))
    return responses


def _triton_code(error: ReplateError) -> int:
    # pb_utils.TritonError is attached by the stub at run time, not at import: look it up here.
    codes = {"internal": pb_utils.TritonError.INTERNAL, "unavailable": pb_utils.TritonError.UNAVAILABLE}
    return codes.get(error.code, pb_utils.TritonError.INVALID_ARG)


def input_bytes(request: Any, name: str) -> bytes | None:
    """The first element of an optional BYTES input, or None when the client did not send it."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return bytes(tensor.as_numpy().reshape(-1)[0])


def input_params(request: Any) -> dict[str, Any]:
    raw = input_bytes(request, "PARAMS")
    try:
        params = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"PARAMS is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise InvalidRequest("PARAMS must be a JSON object")
    return params


def bytes_tensor(name: str, items: list[bytes]) -> Any:
    return pb_utils.Tensor(name, np.array(items, dtype=np.object_))


def json_tensor(name: str, value: dict[str, Any]) -> Any:
    return bytes_tensor(name, [json.dumps(value).encode()])


def matte_from_model(model_name: str) -> Callable[[np.ndarray], Matte]:
    """A matting callable that asks the `model_name` Triton model through BLS (dynamically batched there)."""

    def estimate(image: np.ndarray) -> Matte:
        request = pb_utils.InferenceRequest(
            model_name=model_name,
            inputs=[pb_utils.Tensor("IMAGE", image[np.newaxis])],
            requested_output_names=["ALPHA", "FOREGROUND", "SHADING", "INFO"],
        )
        response = request.exec()
        if response.has_error():
            raise parse_error(response.error().message())

        def output(name: str) -> np.ndarray:
            return pb_utils.get_output_tensor_by_name(response, name).as_numpy()

        info = json.loads(bytes(output("INFO").reshape(-1)[0]))
        return Matte(
            alpha=output("ALPHA")[0],
            foreground=output("FOREGROUND")[0],
            shading=output("SHADING")[0] if info["has_shading"] else None,
            engine=info["engine"],
            timings_ms=info["timings_ms"],
        )

    return estimate
