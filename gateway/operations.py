"""What a request does, shared by every protocol: validate, hold credits, run the Triton pipeline, deliver, capture.

Routes (and, later, gRPC servicers) are thin translations around these functions.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from gateway.credits import charge
from gateway.deps import Services
from gateway.images import InputImage, read_image_field
from gateway.schemas import SEED_MAX, RemoveBackgroundRequest, ReplaceBackgroundRequest
from gateway.triton import PipelineOutput
from replate.errors import ConflictingSceneSources, InvalidRequest


@dataclass(frozen=True)
class Delivered:
    output: PipelineOutput
    stored_names: list[str]
    """Names in storage, in output order; empty when the client asked for base64 (nothing is kept)."""
    credits_charged: int


async def replace_background(
    services: Services, account_id: int, body: ReplaceBackgroundRequest, request_id: str
) -> Delivered:
    check_scene_sources(body)
    if body.harmonize > 0:
        raise InvalidRequest("harmonize: harmonisation is not available on this server yet; send 0")
    image = read_image_field(body.image_url, "image_url", services.limits)
    scene = read_image_field(body.scene_image_url, "scene_image_url", services.limits) if body.scene_image_url else None
    seed = body.seed if body.seed is not None else secrets.randbelow(SEED_MAX + 1)
    params = {
        "scene_prompt": body.scene_prompt,
        "bg_color": body.bg_color,
        "seed": seed,
        "preserve_shadow": body.preserve_shadow,
        "num_outputs": body.num_outputs,
        "output_format": body.output_format,
        **_limit_params(services),
    }
    return await _run_charged(
        services,
        account_id,
        request_id,
        operation="replace_background",
        model="replace_background",
        price=services.settings.price_replace_background * body.num_outputs,
        image=image,
        params=params,
        scene_image=scene,
        fmt=body.output_format,
        store=not body.return_base64,
    )


async def remove_background(
    services: Services, account_id: int, body: RemoveBackgroundRequest, request_id: str
) -> Delivered:
    image = read_image_field(body.image, "image", services.limits)
    params = {"channels": body.channels, "output_format": body.output_format, **_limit_params(services)}
    return await _run_charged(
        services,
        account_id,
        request_id,
        operation="remove_background",
        model="remove_background",
        price=services.settings.price_remove_background,
        image=image,
        params=params,
        scene_image=None,
        fmt=body.output_format,
        store=False,
    )


def check_scene_sources(body: ReplaceBackgroundRequest) -> None:
    if body.bg_color and (body.scene_prompt or body.scene_image_url):
        raise ConflictingSceneSources("bg_color cannot be combined with scene_prompt or scene_image_url; send one")
    if not (body.scene_prompt or body.scene_image_url or body.bg_color):
        raise InvalidRequest("at least one of scene_prompt, scene_image_url, bg_color is required")


def _limit_params(services: Services) -> dict[str, Any]:
    return {"max_megapixels": services.limits.max_megapixels, "max_bytes": services.limits.max_bytes}


async def _run_charged(
    services: Services,
    account_id: int,
    request_id: str,
    *,
    operation: str,
    model: str,
    price: int,
    image: InputImage,
    params: dict[str, Any],
    scene_image: InputImage | None,
    fmt: str,
    store: bool,
) -> Delivered:
    async with charge(services.sessions, account_id, price, operation=operation, request_id=request_id):
        started = time.perf_counter()
        output = await services.triton.run(model, image.data, params, scene_image.data if scene_image else None)
        services.metrics.triton_latency.labels(model).observe(time.perf_counter() - started)
        names = [await services.storage.save(data, fmt) for data in output.images] if store else []
    services.metrics.credits_charged.labels(operation).inc(price)
    return Delivered(output=output, stored_names=names, credits_charged=price)
