"""What the route modules share: documented error responses, request ids, output URLs, JSON with headers, and the
route class that refuses JSON bombs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gateway.deps import Services
from gateway.operations import Delivered
from gateway.schemas import ErrorBody
from replate.errors import InvalidRequest

MAX_JSON_SEPARATORS = 16384
"""Our request bodies are flat objects of a few dozen fields; the free-text fields (prompts, at most 2,000
characters each) are what can legitimately hold many `,` `:` `[` `{`. Base64 holds none."""
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def check_json_structure(body: bytes) -> None:
    """Refuse a JSON bomb before it is parsed: within the body size limit (sized for two inline images), millions of
    keys, array items or nesting levels take minutes and gigabytes to parse and validate (measured on a 53 MB body
    of 4 million keys: 10 s and 0.5 GB in json.loads, then 48 s and 3.5 GB listing one validation error per key).
    Every key needs a `:`, every further item a `,`, every level a `[` or `{`: counting them bounds all three
    without a parser (one C pass: 0.2 ms for a 220 KB body, half of four `bytes.count`)."""
    separators = len(body) - len(body.translate(None, b",:[{"))
    if separators > MAX_JSON_SEPARATORS:
        raise InvalidRequest(
            f"body: {separators} JSON separators (, : [ {{); a request has at most {MAX_JSON_SEPARATORS}: "
            "send one flat object with the documented fields"
        )


class JsonBombSafeRoute(APIRoute):
    """Checks the structure of a JSON body (`check_json_structure`) before FastAPI or the route parses it; forms
    are bounded by their parsers' field and file counts."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_checked(request: Request) -> Response:
            if request.method == "POST" and not request.headers.get("content-type", "").startswith(_FORM_TYPES):
                check_json_structure(await request.body())
            return await handle(request)

        return handle_checked


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
