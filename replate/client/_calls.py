"""Each endpoint once: the request to send and how to read its answer, for both `Client` and `AsyncClient`."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypedDict, TypeVar

import httpx

from replate.client._models import (
    ApiError,
    Credits,
    ImageResult,
    Prediction,
    ReplaceResult,
    decode_data_url,
    remaining_credits,
)

T = TypeVar("T")
ImageInput = str | bytes | os.PathLike[str]
"""A photo: bytes (the encoded file), a path, or a str that is an http(s) URL or a data URL (any other str is read
as a path)."""
URL_PREFIXES = ("http://", "https://", "data:")


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    is_billable: bool = False
    """Sent with an Idempotency-Key (the same on every retry), so that it is charged at most once."""


def new_idempotency_key() -> str:
    return f"replate-client-{uuid.uuid4().hex}"


def multipart_content_type(idempotency_key: str) -> str:
    """A boundary drawn from the Idempotency-Key: httpx would draw a new one for each attempt, and a retry whose
    body differs is refused (`idempotency_key_reused`) instead of being answered with the first attempt's result."""
    return f"multipart/form-data; boundary={hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"


def check(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        raise ApiError.from_response(response)
    return response


class ReplaceParams(TypedDict, total=False):
    """The options of replace-background (the API's field names; `scene_image` is a photo like `image`)."""

    scene_prompt: str
    scene_image: ImageInput
    bg_color: str
    negative_prompt: str
    preserve_shadow: bool
    seed: int
    num_outputs: int
    output_format: Literal["png", "jpeg", "webp"]
    return_base64: bool
    mode: Literal["fast", "balanced", "quality"]
    harmonize: float
    shadow: Literal["none", "contact", "cast"]


class BgReplaceParams(TypedDict, total=False):
    """The options of the Segmind-style `/v1/bg-replace` (`ref_image` is a photo like `image`)."""

    ref_image: ImageInput
    prompt: str
    negative_prompt: str
    samples: int
    scheduler: str
    num_inference_steps: int
    guidance_scale: float
    seed: int
    strength: float
    cn_weight: float
    ip_adapter_weight: float


class RemoveBgParams(TypedDict, total=False):
    """The form fields of the remove.bg-compatible `/v1.0/removebg` other than the image."""

    size: str
    type: str
    format: str
    channels: str
    bg_color: str
    bg_image_url: str
    add_shadow: bool


def replace_background(image: ImageInput, params: ReplaceParams) -> ApiCall[ReplaceResult]:
    """Local photos travel as multipart file parts (no base64 overhead); with URLs alone, the body is JSON."""
    fields: dict[str, Any] = dict(params)
    photos = {"image": image, "scene_image": fields.pop("scene_image", None)}
    uploads = {part: ("image", _read_bytes(photo)) for part, photo in photos.items() if photo and not _is_url(photo)}
    urls = {f"{part}_url": photo for part, photo in photos.items() if photo and part not in uploads}
    path = "/v1/image/replace-background"
    if not uploads:
        return ApiCall("POST", path, _read_replace, json={**urls, **fields}, is_billable=True)
    data = {name: _form_value(value) for name, value in {**urls, **fields}.items()}
    return ApiCall("POST", path, _read_replace, data=data, files=uploads, is_billable=True)


def remove_background(
    image: ImageInput, channels: Literal["rgba", "alpha"], output_format: Literal["png", "webp"]
) -> ApiCall[ImageResult]:
    """A local image travels as a multipart upload (no base64 overhead), a URL in JSON."""
    fields = {"channels": channels, "output_format": output_format}
    if _is_url(image):
        return ApiCall("POST", "/v1/remove-background", _read_image, json={"image": image, **fields}, is_billable=True)
    upload = {"image": ("image", _read_bytes(image))}
    return ApiCall("POST", "/v1/remove-background", _read_image, data=fields, files=upload, is_billable=True)


def bg_replace(image: ImageInput, params: BgReplaceParams) -> ApiCall[ImageResult]:
    body: dict[str, Any] = {"image": image_field(image), **params, "base64": True}
    if "ref_image" in body:
        body["ref_image"] = image_field(body["ref_image"])
    return ApiCall("POST", "/v1/bg-replace", _read_bg_replace, json=body, is_billable=True)


def removebg(image: ImageInput, params: RemoveBgParams) -> ApiCall[ImageResult]:
    data = {name: _form_value(value) for name, value in params.items()}
    if _is_url(image):
        return ApiCall("POST", "/v1.0/removebg", _read_image, data={"image_url": image, **data}, is_billable=True)
    upload = {"image_file": ("image", _read_bytes(image))}
    return ApiCall("POST", "/v1.0/removebg", _read_image, data=data, files=upload, is_billable=True)


def run(
    model: Literal["background-change", "remove-background"],
    image: ImageInput,
    *,
    prompt: str | None = None,
    seed: int | None = None,
    output_format: Literal["png", "jpeg"] = "png",
    return_base64: bool = False,
) -> ApiCall[Prediction]:
    body: dict[str, Any] = {
        "model": model,
        "image": image_field(image),
        "output_format": output_format,
        "return_base64": return_base64,
    }
    body |= {name: value for name, value in (("prompt", prompt), ("seed", seed)) if value is not None}
    return ApiCall("POST", "/v1/run", _read_prediction, json=body, is_billable=True)


def get_prediction(prediction_id: str) -> ApiCall[Prediction]:
    return ApiCall("GET", f"/v1/predictions/{prediction_id}", _read_prediction)


def cancel_prediction(prediction_id: str) -> ApiCall[Prediction]:
    return ApiCall("POST", f"/v1/predictions/{prediction_id}/cancel", _read_prediction)


def credits() -> ApiCall[Credits]:
    return ApiCall("GET", "/v1/credits", lambda response: Credits(**check(response).json()))


def system(path: Literal["/healthz", "/readyz", "/openapi.json"]) -> ApiCall[dict[str, Any]]:
    return ApiCall("GET", path, lambda response: check(response).json())


def metrics() -> ApiCall[str]:
    return ApiCall("GET", "/metrics", lambda response: check(response).text)


def image_field(image: ImageInput) -> str:
    """The value of a JSON image field: URLs and data URLs as they are, files and bytes as base64."""
    if _is_url(image):
        return str(image)
    return base64.b64encode(_read_bytes(image)).decode()


def _form_value(value: object) -> str:
    """A form field's text: booleans as JSON spells them, the rest as str() does."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_url(image: ImageInput) -> bool:
    return isinstance(image, str) and image.startswith(URL_PREFIXES)


def _read_bytes(image: ImageInput) -> bytes:
    return bytes(image) if isinstance(image, bytes | bytearray) else Path(image).read_bytes()


def _read_replace(response: httpx.Response) -> ReplaceResult:
    body = check(response).json()
    return ReplaceResult(
        id=body["id"],
        outputs=body["outputs"],
        width=body["width"],
        height=body["height"],
        seed=body["seed"],
        credits_charged=body["credits_charged"],
        engines=body["engines"],
        timings_ms=body.get("timings_ms", {}),
        notes=body.get("notes", []),
        lighting=body.get("lighting", []),
        remaining_credits=remaining_credits(response),
    )


def _read_image(response: httpx.Response) -> ImageResult:
    check(response)
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        images = [decode_data_url(body["image"])]
    else:
        images = [response.content]
    return _image_result(response, images)


def _read_bg_replace(response: httpx.Response) -> ImageResult:
    body = check(response).json()
    encoded = body["images"] if body.get("images") else [body["image"]]
    return _image_result(response, [base64.b64decode(item) for item in encoded])


def _image_result(response: httpx.Response, images: list[bytes]) -> ImageResult:
    headers = response.headers
    engines = dict(item.split("=", 1) for item in headers.get("x-engines", "").split(",") if "=" in item)
    return ImageResult(
        images=images,
        content_type=headers.get("content-type", ""),
        width=int(headers["x-width"]) if "x-width" in headers else None,
        height=int(headers["x-height"]) if "x-height" in headers else None,
        credits_charged=int(headers.get("x-credits-charged", 0)),
        engines=engines,
        remaining_credits=remaining_credits(response),
    )


def _read_prediction(response: httpx.Response) -> Prediction:
    return Prediction.from_response(check(response))
