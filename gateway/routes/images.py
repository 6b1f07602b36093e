"""The native image endpoints: replace-background and remove-background, each taking JSON or a multipart upload."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway import operations
from gateway.deps import AccountDep, ServicesDep
from gateway.idempotency import run_idempotent
from gateway.routes._common import (
    ERRORS,
    JsonBombSafeRoute,
    delivered_outputs,
    image_headers,
    json_response,
    request_id,
)
from gateway.routes._uploads import input_image, read_body, request_body
from gateway.schemas import (
    RemoveBackgroundBase64Response,
    RemoveBackgroundRequest,
    ReplaceBackgroundRequest,
    ReplaceBackgroundResponse,
)
from replate.errors import InvalidRequest
from replate.imageio import content_type

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["images"], route_class=JsonBombSafeRoute)
IDEMPOTENCY_DOC = "Idempotency-Key header: a retry with the same key and body is answered once and charged once."


REPLACE_PARTS = {"image": "image_url", "scene_image": "scene_image_url"}
"""The file parts of a multipart replace-background, and the JSON field each stands for."""
REMOVE_PARTS = {"image": "image", "file": "image"}
"""`file` is the part's older name, kept for the clients that use it."""


@router.post(
    "/image/replace-background",
    response_model=ReplaceBackgroundResponse,
    openapi_extra=request_body(ReplaceBackgroundRequest, REPLACE_PARTS, required_parts=["image"]),
    description=IDEMPOTENCY_DOC,
)
async def replace_background(request: Request, services: ServicesDep, account_id: AccountDep) -> Response:
    """Lift the subject and put it in front of a new scene (prompt, reference photo or colour). 5 credits/output.
    Send JSON (`image_url`, `scene_image_url`) or a multipart upload (file parts `image`, `scene_image`, and the
    other fields as form fields)."""

    async def produce() -> Response:
        body, files = await read_body(request, services, ReplaceBackgroundRequest, REPLACE_PARTS, max_files=2)
        image = await input_image(services, files, REPLACE_PARTS, "image_url", body.image_url)
        if image is None:
            raise InvalidRequest("image: send the photo as the file part `image` (or JSON `image_url`)")
        scene_image = await input_image(services, files, REPLACE_PARTS, "scene_image_url", body.scene_image_url)
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


@router.post(
    "/remove-background",
    response_model=RemoveBackgroundBase64Response,
    responses={200: {"content": {"image/png": {}, "image/webp": {}}, "description": "The cutout or the matte."}},
    openapi_extra=request_body(RemoveBackgroundRequest, REMOVE_PARTS, required_parts=[]),
    description=IDEMPOTENCY_DOC,
)
async def remove_background(request: Request, services: ServicesDep, account_id: AccountDep) -> Response:
    """Cut the subject out with a true alpha matte: RGBA, or the 8-bit matte alone. 1 credit.
    Send JSON (`image`) or a multipart upload (file part `image`, or `file`)."""

    async def produce() -> Response:
        body, files = await read_body(request, services, RemoveBackgroundRequest, REMOVE_PARTS)
        image = await input_image(services, files, REMOVE_PARTS, "image", body.image)
        if image is None:
            raise InvalidRequest("image: send the photo as the file part `image` (or JSON `image`)")
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
