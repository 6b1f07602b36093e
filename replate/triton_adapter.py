"""What every `model_repository/*/1/model.py` shares: reading tensors, coded errors, the BLS matting call.

Imported only inside Triton's Python backend, where `triton_python_backend_utils` exists. Nothing here is worth
a unit test of its own: the logic lives in the pure `replate` modules it forwards to.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from replate.errors import InvalidRequest, ReplateError, Unavailable, format_error, parse_error
from replate.matting import Matte
from replate.matting.segmenter import SegmenterSpec, segmenter_format
from replate.pipeline import PipelineResult, SceneJob, ScenePlates, Steps


def error_response(error: ReplateError) -> Any:
    """The response of one request that failed with a coded error (the rest of its batch is unaffected)."""
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(format_error(error), _triton_code(error)))


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


def models_dir() -> Path:
    """Where `replate models pull` put the weights: REPLATE_MODELS_DIR, which `replate serve` sets for the Triton it
    starts (set it yourself in the environment of any other Triton that serves this repository)."""
    try:
        return Path(os.environ["REPLATE_MODELS_DIR"])
    except KeyError:
        raise Unavailable("REPLATE_MODELS_DIR is not set in Triton's environment: point it at the weights") from None


def segmenter_spec() -> SegmenterSpec:
    """The segmenter `matting_segmenter` loads and `matting` prepares inputs for, from the environment both share:
    REPLATE_SEGMENTER (a `replate models pull` name or an ONNX path; default u2netp) and REPLATE_SEGMENTER_FORMAT
    (u2net, isnet or birefnet; default u2net). `replate serve` sets both from its settings."""
    try:
        family = segmenter_format(os.environ.get("REPLATE_SEGMENTER_FORMAT", "u2net"))
    except ValueError as error:
        raise Unavailable(f"REPLATE_SEGMENTER_FORMAT: {error}") from None
    return SegmenterSpec(os.environ.get("REPLATE_SEGMENTER", "u2netp"), family)


def segment_with_model(model_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """A segmenter callable, float32 (N, 3, S, S) -> (N, S, S), that asks the `model_name` Triton model through BLS,
    where concurrent requests are batched into one ONNX Runtime call."""

    def segment(batch: np.ndarray) -> np.ndarray:
        request = pb_utils.InferenceRequest(
            model_name=model_name,
            inputs=[pb_utils.Tensor("IMAGE", np.ascontiguousarray(batch, dtype=np.float32))],
            requested_output_names=["MASK"],
        )
        response = request.exec()
        if response.has_error():
            raise parse_error(response.error().message())
        return pb_utils.get_output_tensor_by_name(response, "MASK").as_numpy()

    return segment


async def answer_batch(
    requests: list[Any], start: Callable[[Any], Steps], matting_model: str, scene_model: str | None = None
) -> list[Any]:
    """Run a batch of pipeline requests in rounds: every pipeline runs to the point where it needs something, all of
    them are asked at once (mattes of `matting_model`, so Triton batches them there; generated scenes of
    `scene_model`, whose UNet steps then meet in the UNet's batcher), and every pipeline goes on with its answer.
    A coded failure answers only the request that caused it."""
    results: list[PipelineResult | ReplateError | None] = [None] * len(requests)
    waiting: list[tuple[int, Steps, np.ndarray | SceneJob]] = []
    for index, request in enumerate(requests):
        try:
            steps = start(request)
            waiting.append((index, steps, next(steps)))
        except StopIteration as finished:  # nothing to estimate (the input had its own alpha)
            results[index] = finished.value
        except ReplateError as error:
            results[index] = error
    while waiting:
        answers = await asyncio.gather(
            *(_ask(asked, matting_model, scene_model) for _, _, asked in waiting), return_exceptions=True
        )
        still_waiting = []
        for (index, steps, _asked), answer in zip(waiting, answers, strict=True):
            outcome = _advance(steps, answer)
            if isinstance(outcome, np.ndarray | SceneJob):
                still_waiting.append((index, steps, outcome))
            else:
                results[index] = outcome
        waiting = still_waiting
    return [_pipeline_response(result) for result in results]


async def _ask(asked: np.ndarray | SceneJob, matting_model: str, scene_model: str | None) -> Matte | ScenePlates:
    if not isinstance(asked, SceneJob):
        return await _matte(matting_model, asked)
    if scene_model is None:
        raise ReplateError("a pipeline asked for a generated scene, and this model has no scene model")
    return await _scenes(scene_model, asked)


def _advance(
    steps: Steps, answer: Matte | ScenePlates | BaseException
) -> PipelineResult | ReplateError | np.ndarray | SceneJob:
    """Send the answer on: the pipeline's result, its failure, or what it asks for next."""
    if isinstance(answer, BaseException):
        return answer if isinstance(answer, ReplateError) else ReplateError(f"a pipeline step failed: {answer!r}")
    try:
        return steps.send(answer)
    except StopIteration as finished:
        return finished.value
    except ReplateError as error:
        return error


def _pipeline_response(result: PipelineResult | ReplateError | None) -> Any:
    if isinstance(result, ReplateError) or result is None:
        return error_response(result or ReplateError("no result"))
    images = pb_utils.Tensor("IMAGES", np.array([result.images], dtype=np.object_))
    info = pb_utils.Tensor("INFO", np.array([[json.dumps(result.info).encode()]], dtype=np.object_))
    return pb_utils.InferenceResponse(output_tensors=[images, info])


async def _scenes(model_name: str, job: SceneJob) -> ScenePlates:
    """The generated plates of one SceneJob from the `model_name` Triton model (BLS); every input carries a leading
    batch axis of 1 (the model has max_batch_size > 0)."""
    arrays = {"IMAGE": job.image, "ALPHA": job.alpha, "REFERENCE": job.reference}
    inputs = [pb_utils.Tensor(name, array[np.newaxis]) for name, array in arrays.items() if array is not None]
    inputs.append(pb_utils.Tensor("PARAMS", np.array([[json.dumps(job.params).encode()]], dtype=np.object_)))
    request = pb_utils.InferenceRequest(model_name=model_name, inputs=inputs, requested_output_names=["SCENES", "INFO"])
    response = await request.async_exec()
    if response.has_error():
        raise parse_error(response.error().message())
    scenes = pb_utils.get_output_tensor_by_name(response, "SCENES").as_numpy()[0]
    info = json.loads(bytes(pb_utils.get_output_tensor_by_name(response, "INFO").as_numpy().reshape(-1)[0]))
    return ScenePlates(plates=list(scenes), info=info)


async def _matte(model_name: str, image: np.ndarray) -> Matte:
    """The matte of one image from the `model_name` Triton model (BLS)."""
    request = pb_utils.InferenceRequest(
        model_name=model_name,
        inputs=[pb_utils.Tensor("IMAGE", image[np.newaxis])],
        requested_output_names=["ALPHA", "FOREGROUND", "SHADING", "INFO"],
    )
    response = await request.async_exec()
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
