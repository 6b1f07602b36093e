"""HTTP routes: thin translations between HTTP and `gateway.operations`."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import operations
from gateway.credits import get_balance
from gateway.db import ping
from gateway.deps import AccountDep, ServicesDep
from gateway.schemas import (
    CreditsResponse,
    ErrorBody,
    RemoveBackgroundBase64Response,
    RemoveBackgroundRequest,
    ReplaceBackgroundRequest,
    ReplaceBackgroundResponse,
)
from replate.imageio import content_type

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "unauthorized",
        406: "insufficient_credits",
        413: "image_too_large",
        415: "image_format_unsupported",
        422: "invalid_request, image_corrupt, subject_not_found, conflicting_scene_sources, url_fetch_failed",
        500: "internal",
        503: "unavailable (with Retry-After)",
        504: "timeout",
    }.items()
}

api = APIRouter(prefix="/v1", responses=ERRORS)
system = APIRouter()


def _request_id(request: Request) -> str:
    return request.state.request_id


def _base_url(request: Request, services: ServicesDep) -> str:
    return (services.settings.public_base_url or str(request.base_url)).rstrip("/")


@api.post("/image/replace-background", response_model=ReplaceBackgroundResponse, tags=["images"])
async def replace_background(
    body: ReplaceBackgroundRequest, request: Request, response: Response, services: ServicesDep, account_id: AccountDep
) -> ReplaceBackgroundResponse:
    """Lift the subject and put it in front of a new scene (prompt, reference photo or colour). 5 credits/output."""
    delivered = await operations.replace_background(services, account_id, body, _request_id(request))
    if delivered.stored_names:
        base = _base_url(request, services)
        outputs = [f"{base}/v1/outputs/{name}" for name in delivered.stored_names]
    else:
        mime = content_type(body.output_format)
        outputs = [f"data:{mime};base64,{base64.b64encode(data).decode()}" for data in delivered.output.images]
    info = delivered.output.info
    response.headers["x-credits-charged"] = str(delivered.credits_charged)
    return ReplaceBackgroundResponse(
        id=_request_id(request),
        output_url=outputs[0],
        outputs=outputs,
        width=info["width"],
        height=info["height"],
        seed=info["seed"],
        credits_charged=delivered.credits_charged,
        engines=info["engines"],
        timings_ms=info["timings_ms"],
        notes=info.get("notes", []),
    )


@api.post(
    "/remove-background",
    tags=["images"],
    response_model=RemoveBackgroundBase64Response,
    responses={200: {"content": {"image/png": {}, "image/webp": {}}, "description": "The cutout or the matte."}},
)
async def remove_background(
    body: RemoveBackgroundRequest, request: Request, services: ServicesDep, account_id: AccountDep
) -> Response:
    """Cut the subject out with a true alpha matte: RGBA, or the 8-bit matte alone. 1 credit."""
    delivered = await operations.remove_background(services, account_id, body, _request_id(request))
    info = delivered.output.info
    headers = {
        "x-credits-charged": str(delivered.credits_charged),
        "x-width": str(info["width"]),
        "x-height": str(info["height"]),
        "x-engines": ",".join(f"{stage}={engine}" for stage, engine in info["engines"].items()),
    }
    data = delivered.output.images[0]
    mime = content_type(body.output_format)
    if not body.return_base64:
        return Response(data, media_type=mime, headers=headers)
    payload = RemoveBackgroundBase64Response(
        image=f"data:{mime};base64,{base64.b64encode(data).decode()}",
        width=info["width"],
        height=info["height"],
        credits_charged=delivered.credits_charged,
        engines=info["engines"],
    )
    return JSONResponse(payload.model_dump(), headers=headers)


@api.get("/credits", response_model=CreditsResponse, tags=["account"])
async def credits(services: ServicesDep, account_id: AccountDep) -> CreditsResponse:
    async with services.sessions() as session:
        balance = await get_balance(session, account_id)
    return CreditsResponse(balance=balance.balance, held=balance.held, available=balance.available)


@system.get("/v1/outputs/{name}", tags=["outputs"], responses={404: {"model": ErrorBody}})
async def output_file(name: str, services: ServicesDep) -> FileResponse:
    """An output image. The URL itself is the credential (unguessable); no API key is needed."""
    path = services.storage.path_of(name)
    return FileResponse(path, media_type=content_type(path.suffix.lstrip(".")))


@system.get("/healthz", tags=["system"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@system.get("/readyz", tags=["system"], responses={503: {"model": ErrorBody}})
async def readyz(services: ServicesDep) -> JSONResponse:
    checks = {"triton": await services.triton.is_ready(), "database": await _database_ready(services)}
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    body = {"error": {"code": "unavailable", "message": f"not ready: {failing}"}, "checks": checks}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@system.get("/metrics", tags=["system"], response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _database_ready(services: ServicesDep) -> bool:
    try:
        await ping(services.engine)
    except Exception:  # any driver error means "not ready"; the probe must answer, not raise
        return False
    return True
