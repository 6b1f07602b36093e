"""Endpoints shaped like the hosted APIs replate replaces, so that their clients work by changing host and key:
`POST /v1/bg-replace` (Segmind-style) and `POST /v1.0/removebg` (remove.bg-compatible)."""

from __future__ import annotations

import base64
import re
from typing import Any, Literal

import pydantic_core
from fastapi import APIRouter, Request, Response
from pydantic import Field
from starlette.datastructures import UploadFile

from gateway import operations
from gateway.deps import AccountDep, Services, ServicesDep
from gateway.idempotency import run_idempotent
from gateway.images import InputImage, image_from_bytes
from gateway.routes._common import (
    ERRORS,
    JsonBombSafeRoute,
    error_responses,
    image_headers,
    json_response,
    request_id,
)
from gateway.schemas import BgReplaceBase64Response, BgReplaceRequest, RemoveBgErrorBody, Strict
from replate.errors import ImageTooLarge, InvalidRequest
from replate.imageio import content_type
from replate.pipeline import RemoveOptions, ReplaceOptions

router = APIRouter(tags=["compatible"], route_class=JsonBombSafeRoute)
REMOVEBG_ERRORS = error_responses(
    RemoveBgErrorBody,
    {
        400: "invalid parameters or image (code: invalid_request, image_corrupt, image_too_large, ...)",
        402: "insufficient_credits",
        403: "unauthorized",
        429: "rate_limited (with Retry-After)",
        500: "internal",
        503: "overloaded or unavailable (with Retry-After)",
        504: "timeout",
    },
)


@router.post(
    "/v1/bg-replace",
    responses={
        **ERRORS,
        200: {"content": {"image/jpeg": {}, "application/json": {}}, "description": "The image (or base64)."},
    },
    response_model=BgReplaceBase64Response,
)
async def bg_replace(
    body: BgReplaceRequest, request: Request, services: ServicesDep, account_id: AccountDep
) -> Response:
    """Segmind-style background replacement: JPEG bytes out, or `{"image": base64}` with `base64: true`.
    5 credits per sample. Diffusion-only parameters are validated and passed to the scene engine; the
    `x-engines` header says which engine made the scene."""

    async def produce() -> Response:
        if not (body.prompt or body.ref_image):
            raise InvalidRequest("prompt: at least one of prompt, ref_image is required")
        image = await operations.read_image(services, body.image, "image")
        scene_image = await operations.read_image(services, body.ref_image, "ref_image") if body.ref_image else None
        options = ReplaceOptions(
            scene_prompt=body.prompt,
            seed=body.seed if body.seed >= 0 else operations.random_seed(),
            num_outputs=body.samples,
            output_format="jpeg",
            negative_prompt=body.negative_prompt,
            scheduler=body.scheduler,
            num_inference_steps=body.num_inference_steps,
            guidance_scale=body.guidance_scale,
            strength=body.strength,
            cn_weight=body.cn_weight,
            ip_adapter_weight=body.ip_adapter_weight,
            **operations.limits_for_pipeline(services),
        )
        delivered = await operations.replace_background(
            services,
            account_id,
            request_id(request),
            image=image,
            scene_image=scene_image,
            options=options,
            store=False,
        )
        headers = image_headers(delivered)
        images = delivered.output.images
        if not body.base64:
            return Response(images[0], media_type="image/jpeg", headers=headers)
        encoded = [base64.b64encode(data).decode() for data in images]
        result = (
            BgReplaceBase64Response(image=encoded[0]) if len(encoded) == 1 else BgReplaceBase64Response(images=encoded)
        )
        return json_response(result, headers=headers)

    return await run_idempotent(request, services, account_id, produce)


class RemoveBgRequest(Strict):
    """remove.bg's request fields. Values replate cannot honour yet are refused, never ignored."""

    image_file_b64: str | None = None
    image_url: str | None = None
    size: Literal["auto", "full"] = Field("auto", description="Outputs are always full resolution.")
    type: Literal["auto", "product"] = Field("auto", description="The studio matte is made for products.")
    format: Literal["auto", "png", "jpg"] = "auto"
    channels: Literal["rgba", "alpha"] = "rgba"
    bg_color: str | None = Field(None, max_length=32, description="Hex without '#' (81d4fa, fff) or a colour name.")
    bg_image_url: str | None = None
    add_shadow: bool = Field(False, description="Keep the cast shadow; only with bg_color or bg_image_url.")
    semitransparency: Literal[True] = True
    crop: Literal[False] = False


REMOVEBG_FIELDS = RemoveBgRequest.model_json_schema()
"""Inline: the body is read by hand, so FastAPI puts no RemoveBgRequest in the document's components."""
REMOVEBG_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "allOf": [REMOVEBG_FIELDS],
                    "properties": {
                        "image_file": {"type": "string", "format": "binary"},
                        "bg_image_file": {"type": "string", "format": "binary"},
                    },
                }
            },
            "application/x-www-form-urlencoded": {"schema": REMOVEBG_FIELDS},
            "application/json": {"schema": REMOVEBG_FIELDS},
        },
    }
}
_HEX_WITHOUT_HASH = re.compile(r"^[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")


@router.post(
    "/v1.0/removebg",
    responses={
        **REMOVEBG_ERRORS,
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The cutout."},
    },
    openapi_extra=REMOVEBG_BODY,
)
async def removebg(request: Request, services: ServicesDep, account_id: AccountDep) -> Response:
    """remove.bg-compatible: the key in `X-Api-Key`, the image as `image_file`, `image_file_b64` or `image_url`.
    1 credit. Errors come in remove.bg's shape, `{"errors": [{"title", "code"}]}`."""

    async def produce() -> Response:
        fields, files = await _removebg_input(request, services)
        body = RemoveBgRequest.model_validate(fields)
        image = await _removebg_image(services, body, files.get("image_file"))
        scene_image = files.get("bg_image_file")
        scene = image_from_bytes(scene_image, services.limits) if scene_image else None
        if scene is None and body.bg_image_url:
            scene = await operations.read_image(services, body.bg_image_url, "bg_image_url")
        has_background = bool(body.bg_color or scene)
        fmt = {"png": "png", "jpg": "jpeg"}.get(body.format) or ("jpeg" if has_background else "png")
        delivered = await _removebg_run(request, services, account_id, body, image, scene, fmt)
        headers = {name.title(): value for name, value in image_headers(delivered).items()}
        return Response(delivered.output.images[0], media_type=content_type(fmt), headers=headers)

    return await run_idempotent(request, services, account_id, produce)


async def _removebg_run(
    request: Request,
    services: Services,
    account_id: int,
    body: RemoveBgRequest,
    image: InputImage,
    scene: InputImage | None,
    fmt: str,
) -> operations.Delivered:
    limits = operations.limits_for_pipeline(services)
    bg_color = _removebg_color(body.bg_color)
    if body.format == "jpg" and not (bg_color or scene):
        bg_color = "#ffffff"  # as remove.bg: a JPEG has no transparency, so the cutout goes on white
    if not (bg_color or scene):
        if body.add_shadow:
            raise InvalidRequest("add_shadow: a shadow needs a background; send bg_color or bg_image_url")
        options = RemoveOptions(channels=body.channels, output_format="png", **limits)
        return await operations.remove_background(
            services, account_id, request_id(request), image=image, options=options, store=False
        )
    if body.channels == "alpha":
        raise InvalidRequest("channels: alpha cannot be combined with a background")
    if bg_color and scene:
        raise InvalidRequest("bg_color: send either bg_color or a background image, not both")
    options = ReplaceOptions(bg_color=bg_color, preserve_shadow=body.add_shadow, output_format=fmt, seed=0, **limits)
    return await operations.replace_background(
        services,
        account_id,
        request_id(request),
        image=image,
        scene_image=scene,
        options=options,
        store=False,
        price=services.settings.price_remove_background,
    )


async def _removebg_input(request: Request, services: Services) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Fields and uploaded files of a JSON, urlencoded or multipart request."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:  # pydantic-core's parser bounds nesting depth: a deeply nested body is an error, not a RecursionError
            fields = pydantic_core.from_json(await request.body())
        except ValueError as exc:
            raise InvalidRequest(f"body: not valid JSON ({exc})") from exc
        if not isinstance(fields, dict):
            raise InvalidRequest("body: a JSON object is required")
        return fields, {}
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    async with request.form(max_files=2, max_fields=20) as form:
        for name, value in form.items():
            if isinstance(value, UploadFile):
                data = await value.read(services.settings.max_image_bytes + 1)
                if len(data) > services.settings.max_image_bytes:
                    raise ImageTooLarge(
                        f"{name}: the upload is over the {services.settings.max_image_bytes} byte limit"
                    )
                files[name] = data
            else:
                fields[name] = value
    return fields, files


async def _removebg_image(services: Services, body: RemoveBgRequest, upload: bytes | None) -> InputImage:
    sources = [source for source in (upload, body.image_file_b64, body.image_url) if source]
    if len(sources) != 1:
        raise InvalidRequest("image_file: send exactly one of image_file, image_file_b64, image_url")
    if upload:
        return image_from_bytes(upload, services.limits)
    if body.image_file_b64:
        return await operations.read_image(services, body.image_file_b64, "image_file_b64")
    return await operations.read_image(services, str(body.image_url), "image_url")


def _removebg_color(color: str | None) -> str | None:
    if color and _HEX_WITHOUT_HASH.match(color):
        return f"#{color}"
    return color
