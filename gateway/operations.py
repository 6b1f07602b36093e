"""What a request does, whatever its endpoint or protocol: read the inputs, pass admission control (rate limit,
in-flight slot), hold credits, run the Triton pipeline, deliver, capture. Routes and gRPC servicers are thin
translations around these functions.

Options are built as `replate.pipeline` option objects, whose validation runs here, before any credit moves.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from gateway.credits import charge
from gateway.deps import Services
from gateway.errors import Overloaded, Timeout
from gateway.images import InputImage, read_image_field
from gateway.schemas import SEED_MAX, RemoveBackgroundRequest, ReplaceBackgroundRequest
from gateway.triton import PipelineOutput
from replate.imageio import content_type
from replate.pipeline import RemoveOptions, ReplaceOptions
from replate.scene import check_scene_sources


@dataclass(frozen=True)
class Delivered:
    output: PipelineOutput
    outputs: list[str]
    """Storage names when stored, else data URLs (nothing kept)."""
    is_stored: bool
    credits_charged: int


async def read_image(services: Services, value: str, field: str) -> InputImage:
    return await read_image_field(value, field, services.limits, services.fetch_policy, services.resolver)


def random_seed() -> int:
    return secrets.randbelow(SEED_MAX + 1)


def limits_for_pipeline(services: Services) -> dict[str, float | int]:
    return {"max_megapixels": services.limits.max_megapixels, "max_bytes": services.limits.max_bytes}


def replace_options(services: Services, body: ReplaceBackgroundRequest) -> ReplaceOptions:
    """The pipeline options a replace-background request (HTTP or gRPC) asks for; a random seed when it sent none."""
    return ReplaceOptions(
        scene_prompt=body.scene_prompt,
        bg_color=body.bg_color,
        seed=body.seed if body.seed is not None else random_seed(),
        preserve_shadow=body.preserve_shadow,
        num_outputs=body.num_outputs,
        output_format=body.output_format,
        negative_prompt=body.negative_prompt,
        mode=body.mode,
        harmonize=body.harmonize,
        shadow=body.shadow,
        **limits_for_pipeline(services),
    )


def remove_options(services: Services, body: RemoveBackgroundRequest) -> RemoveOptions:
    return RemoveOptions(channels=body.channels, output_format=body.output_format, **limits_for_pipeline(services))


def check_replace(options: ReplaceOptions, scene_image: InputImage | None) -> None:
    check_scene_sources(options.scene_prompt, scene_image is not None, options.bg_color)


async def replace_background(
    services: Services,
    account_id: int,
    request_id: str,
    *,
    image: InputImage,
    scene_image: InputImage | None,
    options: ReplaceOptions,
    store: bool,
    price: int | None = None,
    deadline: float | None = None,
) -> Delivered:
    """`price` defaults to the replace-background price per output; remove.bg's background option passes its own.
    `deadline` (time.monotonic()) is the caller's own, when it set one (gRPC)."""
    check_replace(options, scene_image)
    return await _run_charged(
        services,
        account_id,
        request_id,
        model="replace_background",
        price=services.settings.price_replace_background * options.num_outputs if price is None else price,
        image=image,
        params=asdict(options),
        scene_image=scene_image,
        fmt=options.output_format,
        store=store,
        deadline=deadline,
    )


async def remove_background(
    services: Services,
    account_id: int,
    request_id: str,
    *,
    image: InputImage,
    options: RemoveOptions,
    store: bool,
    deadline: float | None = None,
) -> Delivered:
    return await _run_charged(
        services,
        account_id,
        request_id,
        model="remove_background",
        price=services.settings.price_remove_background,
        image=image,
        params=asdict(options),
        scene_image=None,
        fmt=options.output_format,
        store=store,
        deadline=deadline,
    )


def data_urls(images: list[bytes], fmt: str) -> list[str]:
    mime = content_type(fmt)
    return [f"data:{mime};base64,{base64.b64encode(data).decode()}" for data in images]


async def _run_charged(
    services: Services,
    account_id: int,
    request_id: str,
    *,
    model: str,
    price: int,
    image: InputImage,
    params: dict[str, object],
    scene_image: InputImage | None,
    fmt: str,
    store: bool,
    deadline: float | None,
) -> Delivered:
    services.rate_limiter.check(account_id)
    async with services.admission.request_slot():
        timeout_s = _timeout_s(services, deadline)
        async with charge(services.transactions, account_id, price, operation=model, request_id=request_id):
            scene_data = scene_image.data if scene_image else None
            output = await call_pipeline(services, model, image.data, params, scene_data, timeout_s=timeout_s)
            if store:
                outputs = [await services.storage.save(data, fmt) for data in output.images]
            else:
                outputs = data_urls(output.images, fmt)
    services.metrics.credits_charged.labels(model).inc(price)
    return Delivered(output=output, outputs=outputs, is_stored=store, credits_charged=price)


def _timeout_s(services: Services, deadline: float | None) -> float:
    """The Triton call's deadline: the configured one, or what is left of the caller's if that is sooner."""
    timeout_s = services.settings.triton_timeout_s
    if deadline is None:
        return timeout_s
    left_s = deadline - time.monotonic()
    if left_s <= 0:
        raise Timeout("the request's deadline passed before it reached the inference server; nothing was charged")
    return min(timeout_s, left_s)


async def call_pipeline(
    services: Services,
    model: str,
    image: bytes,
    params: dict[str, Any],
    scene_image: bytes | None = None,
    *,
    timeout_s: float | None = None,
) -> PipelineOutput:
    """One Triton pipeline call, timed; Triton's own refusals (its queue policy) are counted as rejections."""
    started = time.perf_counter()
    try:
        output = await services.triton.run(model, image, params, scene_image, timeout_s)
    except Overloaded:
        services.metrics.rejections.labels("triton_overloaded").inc()
        raise
    services.metrics.triton_latency.labels(model).observe(time.perf_counter() - started)
    return output
