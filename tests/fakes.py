"""Test seams: the gateway's Pipelines protocol served in-process by the real `replate` pipeline (no Triton)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.triton import DRAWN_SCENE_ENGINES, PipelineOutput
from replate.errors import ReplateError
from replate.matting import estimate_matte
from replate.pipeline import RemoveOptions, ReplaceOptions, options_from_params, remove_background, replace_background


class InProcessPipelines:
    """Runs the pipelines the Triton models run, in a thread of the test process. `fail_with` makes every call
    raise that error (a seam for failure paths that Triton would report); with a `gate`, every call waits until it
    is set (so a test can hold calls in flight). `timeouts` records the deadline each call was given."""

    def __init__(self, fail_with: ReplateError | None = None, gate: asyncio.Event | None = None) -> None:
        self.fail_with = fail_with
        self.gate = gate
        self.calls: list[str] = []
        self.timeouts: list[float | None] = []

    async def run(
        self,
        model: str,
        image: bytes,
        params: dict[str, Any],
        scene_image: bytes | None = None,
        timeout_s: float | None = None,
    ) -> PipelineOutput:
        self.calls.append(model)
        self.timeouts.append(timeout_s)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if model == "replace_background":
            options = options_from_params(ReplaceOptions, params)
            result = await asyncio.to_thread(replace_background, image, options, estimate_matte, scene_image)
        else:
            options = options_from_params(RemoveOptions, params)
            result = await asyncio.to_thread(remove_background, image, options, estimate_matte)
        return PipelineOutput(images=result.images, info=result.info)

    async def is_ready(self) -> bool:
        return self.fail_with is None

    async def scene_engines(self) -> list[str]:
        return list(DRAWN_SCENE_ENGINES)

    async def close(self) -> None:
        pass
