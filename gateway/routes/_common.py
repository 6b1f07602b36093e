"""What the route modules share: documented error responses, request ids, output URLs, JSON with headers."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from gateway.deps import Services
from gateway.operations import Delivered
from gateway.schemas import ErrorBody

RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before a retry; nothing was charged", "schema": {"type": "integer"}}
}
RETRY_STATUSES = (429, 503)


def error_responses(model: type[BaseModel], descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of error statuses, with the Retry-After header where it is sent."""
    return {
        status: {"model": model, "description": description}
        | ({"headers": RETRY_AFTER_HEADER} if status in RETRY_STATUSES else {})
        for status, description in descriptions.items()
    }


ERRORS = error_responses(
    ErrorBody,
    {
        400: "invalid_request: the body is not valid JSON or form data",
        401: "unauthorized",
        404: "not_found",
        406: "insufficient_credits",
        413: "image_too_large",
        415: "image_format_unsupported",
        422: "invalid_request (the field is named), image_corrupt, subject_not_found, conflicting_scene_sources, "
        "url_forbidden, url_fetch_failed, idempotency_key_reused",
        429: "rate_limited: this key sent more requests than its rate allows (with Retry-After)",
        500: "internal",
        503: "overloaded: the server is at capacity (too many requests in flight and queued, or the inference "
        "server's queue is full); unavailable: the inference server is down. Both with Retry-After",
        504: "timeout: the inference server did not answer before the deadline",
    },
)


def request_id(request: Request) -> str:
    return request.state.request_id


def base_url(request: Request, services: Services) -> str:
    return (services.settings.public_base_url or str(request.base_url)).rstrip("/")


def output_urls(request: Request, services: Services, names: list[str]) -> list[str]:
    base = base_url(request, services)
    return [services.storage.url_for(name, base) for name in names]


def delivered_outputs(request: Request, services: Services, delivered: Delivered) -> list[str]:
    return output_urls(request, services, delivered.outputs) if delivered.is_stored else delivered.outputs


def image_headers(delivered: Delivered) -> dict[str, str]:
    info = delivered.output.info
    return {
        "x-credits-charged": str(delivered.credits_charged),
        "x-width": str(info["width"]),
        "x-height": str(info["height"]),
        "x-engines": ",".join(f"{stage}={engine}" for stage, engine in info["engines"].items()),
    }


def json_response(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialized by pydantic-core: with base64 images inside, `json.dumps` (JSONResponse) costs a few ms more."""
    return Response(model.model_dump_json(), status_code=status_code, headers=headers, media_type="application/json")
