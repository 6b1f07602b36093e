"""What the client returns: frozen dataclasses read from the API's JSON and headers, and its one error class."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    """The server answered with an error: `code` is the API's stable machine code (`unauthorized`,
    `insufficient_credits`, `image_corrupt`, ...), `message` says what is wrong and how to fix it. A request that
    failed was not charged."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        remaining_credits: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.remaining_credits = remaining_credits
        self.retry_after_s = retry_after_s

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """From either error shape: `{"error": {"code", "message"}}`, or remove.bg's `{"errors": [{"title", "code"}]}`
        on its compatible endpoint."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if isinstance(body.get("error"), dict):
            code, message = body["error"].get("code", ""), body["error"].get("message", "")
        elif body.get("errors"):
            code, message = body["errors"][0].get("code", ""), body["errors"][0].get("title", "")
        else:
            code, message = "http_error", response.reason_phrase or f"HTTP {response.status_code}"
        return cls(
            response.status_code,
            code,
            message,
            request_id=response.headers.get("x-request-id"),
            remaining_credits=remaining_credits(response),
            retry_after_s=retry_after_s(response),
        )


def decode_data_url(url: str) -> bytes:
    return base64.b64decode(url.partition(",")[2])


def remaining_credits(response: httpx.Response) -> int | None:
    value = response.headers.get("x-remaining-credits")
    return int(value) if value is not None else None


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (it may also be an HTTP date); None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now().astimezone()).total_seconds())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Credits:
    balance: int
    held: int
    available: int
    """What can be spent now: balance minus the credits held by requests in flight."""


@dataclass(frozen=True)
class ReplaceResult:
    """`POST /v1/image/replace-background`. `outputs` are signed URLs (no key needed; hand them to `download`), or
    data URLs with `return_base64=True`."""

    id: str
    outputs: list[str]
    width: int
    height: int
    seed: int
    credits_charged: int
    engines: dict[str, str]
    timings_ms: dict[str, float]
    notes: list[str]
    lighting: list[dict[str, Any]]
    """Per output, when harmonisation or a shadow was asked for: the light directions and the shadow made."""
    remaining_credits: int | None

    @property
    def output_url(self) -> str:
        return self.outputs[0]

    def images(self) -> list[bytes]:
        """The outputs' bytes, when they are data URLs (`return_base64=True`); stored outputs: see `download`."""
        if not all(output.startswith("data:") for output in self.outputs):
            raise ValueError("the outputs are URLs, not data URLs: download them with Client.download")
        return [decode_data_url(output) for output in self.outputs]


@dataclass(frozen=True)
class ImageResult:
    """An answer that is the image itself (remove-background, the compatible endpoints): `images` holds the encoded
    files, one per output."""

    images: list[bytes]
    content_type: str
    width: int | None
    height: int | None
    credits_charged: int
    engines: dict[str, str]
    remaining_credits: int | None

    @property
    def image(self) -> bytes:
        return self.images[0]

    def save(self, path: str | Path) -> Path:
        """Write the first image to `path`."""
        path = Path(path)
        path.write_bytes(self.image)
        return path


@dataclass(frozen=True)
class PredictionError:
    code: str
    message: str


@dataclass(frozen=True)
class Prediction:
    """An asynchronous prediction (`POST /v1/run`, `GET /v1/predictions/{id}`)."""

    id: str
    model: str
    status: str
    """starting, processing, succeeded, failed or canceled."""
    output: list[str] | None
    error: PredictionError | None
    credits_charged: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    metrics: dict[str, float] = field(default_factory=dict)
    remaining_credits: int | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled")

    @classmethod
    def from_response(cls, response: httpx.Response) -> Prediction:
        body: dict[str, Any] = response.json()
        return cls(
            id=body["id"],
            model=body["model"],
            status=body["status"],
            output=body.get("output"),
            error=PredictionError(**body["error"]) if body.get("error") else None,
            credits_charged=body.get("credits_charged", 0),
            created_at=datetime.fromisoformat(body["created_at"]),
            started_at=_optional_time(body.get("started_at")),
            completed_at=_optional_time(body.get("completed_at")),
            metrics=body.get("metrics", {}),
            remaining_credits=remaining_credits(response),
        )


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
