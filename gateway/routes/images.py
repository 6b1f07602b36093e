"""The native image endpoints: replace-background (JSON) and remove-background (JSON or multipart)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from gateway import operations
from gateway.deps import AccountDep, Services, ServicesDep
from gateway.idempotency import run_idempotent
from gateway.images import image_from_bytes
from gateway.routes._common import (
    ERRORS,
    JsonBombSafeRoute,
    delivered_outputs,
    image_headers,
    json_response,
    request_id,
)
from gateway.schemas import (
    RemoveBackgroundBase64Response,
    RemoveBackgroundRequest,
    ReplaceBackgroundRequest,
    ReplaceBackgroundResponse,
)
from replate.errors import ImageTooLarge, InvalidRequest
from replate.imageio import content_type

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["images"], route_class=JsonBombSafeRoute)
IDEMPOTENCY_DOC = "Idempotency-Key header: a retry with the same key and body is answered once and charged once."


@router.post("/image/replace-background", response_model=ReplaceBackgroundResponse, description=IDEMPOTENCY_DOC)
async def replace_background(
    body: ReplaceBackgroundRequest, request: Request, services: ServicesDep, account_id: AccountDep
) -> Response:
    """Lift the subject and put it in front of a new scene (prompt, reference photo or colour). 5 credits/output."""

    async def produce() -> Response:
        image = await operations.read_image(services, body.image_url, "image_url")
        scene_image = None
        if body.scene_image_url:
            scene_image = await operations.read_image(services, body.scene_image_url, "scene_image_url")
        options = operations.replace_options(services, body)
        delivered = await operations.replace_background(
            services,
            account_id,
            request_id(request),
            image=image,
            scene_image=scene_image,
            options=options,
            store=not body.return_base64,
        )
        outputs = delivered_outputs(request, services, delivered)
        info = delivered.output.info
        result = ReplaceBackgroundResponse(
            id=request_id(request),
            output_url=outputs[0],
            outputs=outputs,
            width=info["width"],
            height=info["height"],
            seed=info["seed"],
            credits_charged=delivered.credits_charged,
            engines=info["engines"],
            timings_ms=info["timings_ms"],
            notes=info.get("notes", []),
            lighting=info.get("lighting", []),
        )
        return json_response(result, headers={"x-credits-charged": str(delivered.credits_charged)})

    return await run_idempotent(request, services, account_id, produce)


# The body is read by hand (JSON or multipart), so FastAPI lists no schema for it: it is given here, inline.
REMOVE_BACKGROUND_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": RemoveBackgroundRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "channels": {"type": "string", "enum": ["rgba", "alpha"], "default": "rgba"},
                        "output_format": {"type": "string", "enum": ["png", "webp"], "default": "png"},
                        "return_base64": {"type": "boolean", "default": False},
                    },
                }
            },
        },
    }
}


@router.post(
    "/remove-background",
    response_model=RemoveBackgroundBase64Response,
    responses={200: {"content": {"image/png": {}, "image/webp": {}}, "description": "The cutout or the matte."}},
    openapi_extra=REMOVE_BACKGROUND_BODY,
    description=IDEMPOTENCY_DOC,
)
async def remove_background(request: Request, services: ServicesDep, account_id: AccountDep) -> Response:
    """Cut the subject out with a true alpha matte: RGBA, or the 8-bit matte alone. 1 credit.
    Send JSON (`image`) or a multipart upload (`file`)."""

    async def produce() -> Response:
        body, uploaded = await _remove_background_input(request, services)
        image = image_from_bytes(uploaded, services.limits) if uploaded is not None else None
        if image is None:
            image = await operations.read_image(services, body.image, "image")
        options = operations.remove_options(services, body)
        delivered = await operations.remove_background(
            services, account_id, request_id(request), image=image, options=options, store=False
        )
        headers = image_headers(delivered)
        if not body.return_base64:
            data = delivered.output.images[0]
            return Response(data, media_type=content_type(body.output_format), headers=headers)
        info = delivered.output.info
        result = RemoveBackgroundBase64Response(
            image=delivered.outputs[0],
            width=info["width"],
            height=info["height"],
            credits_charged=delivered.credits_charged,
            engines=info["engines"],
        )
        return json_response(result, headers=headers)

    return await run_idempotent(request, services, account_id, produce)


async def _remove_background_input(
    request: Request, services: Services
) -> tuple[RemoveBackgroundRequest, bytes | None]:
    """The request's options and, for a multipart upload, the file's bytes."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return RemoveBackgroundRequest.model_validate_json(await request.body()), None
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: a multipart upload must carry the image in a `file` part")
        data = await upload.read(services.settings.max_image_bytes + 1)
        fields = {name: value for name, value in form.items() if name != "file" and isinstance(value, str)}
    if len(data) > services.settings.max_image_bytes:
        raise ImageTooLarge(f"file: the upload is over the {services.settings.max_image_bytes} byte limit")
    return RemoveBackgroundRequest.model_validate({**fields, "image": ""}), data
