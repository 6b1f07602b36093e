"""The gateway's only door to Triton: one call per request to a pipeline model, errors translated once here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.errors import RETRY_AFTER_S, Overloaded, Timeout
from replate.errors import ReplateError, Unavailable, parse_error

MAX_MESSAGE_BYTES = 512 * 1024 * 1024
"""A 25 MP input and its PNG outputs stay far below this; tritonclient's own default would cap us at 4 MB once
channel args are given."""


TRITON_REJECTIONS = ("Exceeds maximum queue size", "Request timeout expired")
"""How Triton says (with UNAVAILABLE) that a model's queue policy refused a request: the queue is full, or the
request waited there past its timeout."""

SCENE_MODEL = "scene_diffusion"
DRAWN_SCENE_ENGINES = ("color", "reference", "studio")


@dataclass(frozen=True)
class PipelineOutput:
    images: list[bytes]
    info: dict[str, Any]


class Pipelines(Protocol):
    """What the gateway needs from the inference server."""

    async def run(
        self,
        model: str,
        image: bytes,
        params: dict[str, Any],
        scene_image: bytes | None = None,
        timeout_s: float | None = None,
    ) -> PipelineOutput:
        """`timeout_s`: this call's deadline (None: the configured one); past it, `Timeout`."""
        ...

    async def is_ready(self) -> bool: ...

    async def scene_engines(self) -> list[str]:
        """The scene engines requests can reach: the drawn ones always, a diffusion engine when one is loaded."""
        ...

    async def close(self) -> None: ...


class TritonPipelines:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client = grpcclient.InferenceServerClient(
            url,
            channel_args=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )

    async def run(
        self,
        model: str,
        image: bytes,
        params: dict[str, Any],
        scene_image: bytes | None = None,
        timeout_s: float | None = None,
    ) -> PipelineOutput:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        named = {"IMAGE": image, "PARAMS": json.dumps(params).encode()}
        if scene_image is not None:
            named["SCENE_IMAGE"] = scene_image
        inputs = []
        for name, value in named.items():
            tensor = grpcclient.InferInput(name, [1, 1], "BYTES")  # a batch of one request
            tensor.set_data_from_numpy(np.array([[value]], dtype=np.object_))
            inputs.append(tensor)
        outputs = [grpcclient.InferRequestedOutput("IMAGES"), grpcclient.InferRequestedOutput("INFO")]
        try:
            result = await self._client.infer(
                model,
                inputs,
                outputs=outputs,
                # Triton drops the request from its queue past the deadline (allow_timeout_override in the config)
                timeout=max(1, int(timeout_s * 1_000_000)),
                client_timeout=timeout_s,
            )
        except InferenceServerException as exc:
            raise translate_error(exc) from exc
        images = [bytes(item) for item in result.as_numpy("IMAGES").reshape(-1)]
        info = json.loads(bytes(result.as_numpy("INFO").reshape(-1)[0]))
        return PipelineOutput(images=images, info=info)

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=2.0))
        except InferenceServerException:
            return False

    async def scene_engines(self) -> list[str]:
        engines = list(DRAWN_SCENE_ENGINES)
        try:
            if await self._client.is_model_ready(SCENE_MODEL, client_timeout=2.0):
                config = await self._client.get_model_config(SCENE_MODEL, as_json=True, client_timeout=2.0)
                engines.append(config["config"]["parameters"]["engine"]["string_value"])
        except InferenceServerException:
            pass  # Triton unreachable or no scene model: the drawn engines are what is left
        return engines

    async def close(self) -> None:
        await self._client.close()


def translate_error(exc: InferenceServerException) -> ReplateError:
    status = str(exc.status() or "")
    message = exc.message() or ""
    if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in message:
        return Timeout("the inference server did not answer in time; try again or send a smaller image")
    if "UNAVAILABLE" in status and any(rejection in message for rejection in TRITON_REJECTIONS):
        retry_after_s = RETRY_AFTER_S["overloaded"]
        return Overloaded(f"the inference server is at capacity; retry in {retry_after_s} s", retry_after_s)
    if "UNAVAILABLE" in status:
        return Unavailable("the inference server is unavailable; try again shortly")
    error = parse_error(message)
    if error.code == "internal":
        return ReplateError(f"inference failed ({status}): {message}")
    return error
