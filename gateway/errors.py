"""The gateway's error codes and the only tables from a code to HTTP and gRPC status; one handler renders them all.

Pixel-level codes come from `replate.errors`; the codes below exist only at the service boundary.
Every error body is `{"error": {"code": ..., "message": ...}}`, never a stack trace or an internal address.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from replate.errors import ReplateError, Unavailable

log = logging.getLogger("replate.gateway")


class Unauthorized(ReplateError):
    code = "unauthorized"


class InsufficientCredits(ReplateError):
    code = "insufficient_credits"


class NotFound(ReplateError):
    code = "not_found"


class UrlForbidden(ReplateError):
    code = "url_forbidden"


class UrlFetchFailed(ReplateError):
    code = "url_fetch_failed"


class Timeout(ReplateError):
    code = "timeout"


class IdempotencyKeyReused(ReplateError):
    code = "idempotency_key_reused"


class Overloaded(Unavailable):
    """Too much work in flight (this gateway's queue, or Triton's): a retry after `retry_after_s` may succeed. An
    Unavailable, so that a prediction that meets it goes back to its queue."""

    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached (refused, restarting, connection lost): 503 like a Triton outage. Raised by
    the engine itself (`gateway.db.create_engine`), so every caller sees it instead of a driver error."""


class StorageUnavailable(Unavailable):
    """Outputs cannot be stored (disk full, read-only, the bucket refuses): the request fails, its hold is released;
    a prediction goes back to its queue."""

    code = "storage_unavailable"


class RateLimited(ReplateError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


HTTP_STATUS = {
    "invalid_request": 422,
    "conflicting_scene_sources": 422,
    "image_corrupt": 422,
    "image_too_large": 413,
    "image_format_unsupported": 415,
    "subject_not_found": 422,
    "unauthorized": 401,
    "insufficient_credits": 406,
    "not_found": 404,
    "url_forbidden": 422,
    "url_fetch_failed": 422,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "timeout": 504,
    "unavailable": 503,
    "overloaded": 503,
    "storage_unavailable": 503,
    "internal": 500,
}
RETRY_AFTER_S = {"unavailable": 5, "overloaded": 2, "storage_unavailable": 30}
"""Retry-After of the codes that have one, unless the error carries its own estimate (`retry_after_s`)."""


def http_status(error: ReplateError) -> int:
    return HTTP_STATUS.get(error.code, 500)


def retry_after_s(error: ReplateError) -> int | None:
    """Seconds after which a retry may succeed, for the errors that say so (Retry-After, gRPC retry pushback)."""
    return getattr(error, "retry_after_s", RETRY_AFTER_S.get(error.code))


GRPC_STATUS = {
    "invalid_request": grpc.StatusCode.INVALID_ARGUMENT,
    "conflicting_scene_sources": grpc.StatusCode.INVALID_ARGUMENT,
    "image_corrupt": grpc.StatusCode.INVALID_ARGUMENT,
    # Not OUT_OF_RANGE (meant for reads past the end of something that may grow): the input is wrong for good.
    "image_too_large": grpc.StatusCode.INVALID_ARGUMENT,
    "image_format_unsupported": grpc.StatusCode.INVALID_ARGUMENT,
    "subject_not_found": grpc.StatusCode.INVALID_ARGUMENT,
    "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
    "insufficient_credits": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "rate_limited": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "url_forbidden": grpc.StatusCode.INVALID_ARGUMENT,
    "url_fetch_failed": grpc.StatusCode.INVALID_ARGUMENT,
    "idempotency_key_reused": grpc.StatusCode.INVALID_ARGUMENT,
    "timeout": grpc.StatusCode.DEADLINE_EXCEEDED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "overloaded": grpc.StatusCode.UNAVAILABLE,
    "storage_unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL,
}
"""The gRPC status of each code (the machine code itself travels in the `x-error-code` trailing metadata)."""


def grpc_status(error: ReplateError) -> grpc.StatusCode:
    return GRPC_STATUS.get(error.code, grpc.StatusCode.INTERNAL)


REMOVEBG_PATH = "/v1.0/removebg"
REMOVEBG_STATUS = {"unauthorized": 403, "insufficient_credits": 402, "not_found": 404, "rate_limited": 429}
"""remove.bg's own statuses: 403 for a bad key, 402 for no credits, 400 for any other client error."""


def error_response(
    request: Request, code: str, message: str, status: int, retry_after: int | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if request.url.path == REMOVEBG_PATH:
        status = REMOVEBG_STATUS.get(code, 400 if status < 500 else status)
        body: dict[str, object] = {"errors": [{"title": message, "code": code}]}
    else:
        body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _replate_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReplateError)
    status = http_status(exc)
    if status >= 500 and exc.code == "internal":
        log.error("internal error on %s: %s", request.url.path, exc.message)
        return error_response(request, "internal", "the server failed to process this request; try again later", status)
    return error_response(request, exc.code, exc.message, status, retry_after_s(exc))


MAX_PROBLEMS_LISTED = 10
"""A body with thousands of unknown fields gets a short answer, not one line per field."""


def validation_message(errors: Sequence[Any]) -> str:
    """pydantic's errors as one message naming each field (`seed: Input should be ...; mode: ...`), at most
    MAX_PROBLEMS_LISTED of them."""
    problems = []
    for error in errors[:MAX_PROBLEMS_LISTED]:
        field = ".".join(str(part) for part in error["loc"] if part not in ("body", "query", "header"))
        problems.append(f"{field or 'body'}: {error['msg']}")
    if len(errors) > MAX_PROBLEMS_LISTED:
        problems.append(f"and {len(errors) - MAX_PROBLEMS_LISTED} more problems")
    return "; ".join(problems)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(request, "invalid_request", validation_message(exc.errors()), 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 413: "image_too_large"}.get(exc.status_code, "invalid_request")
    return error_response(request, code, str(exc.detail), exc.status_code)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(request, "internal", "the server failed to process this request; try again later", 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ReplateError, _replate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
