"""Request bodies of the native image endpoints: JSON (images as URLs, data URLs or base64) or a multipart upload
(images as raw file parts, the other fields as form fields). A file part saves the client the base64 encoding and
the gateway the decoding and the parsing of a JSON string a third larger than the image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from gateway.deps import Services
from gateway.images import InputImage, image_from_bytes
from gateway.operations import read_image
from replate.errors import ImageTooLarge, InvalidRequest

Model = TypeVar("Model", bound=BaseModel)
MAX_FORM_FIELDS = 20
"""Our forms carry at most the dozen fields of a JSON body: more is a flood, refused by the form parser (400)."""


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def read_body(
    request: Request, services: Services, schema: type[Model], parts: Mapping[str, str], max_files: int = 1
) -> tuple[Model, dict[str, bytes]]:
    """The request's fields, validated by `schema`, and the images uploaded as file parts. `parts` maps each file
    part's name to the JSON field it stands for (given an empty value in the model, so that required fields pass)."""
    if not is_multipart(request):
        return schema.model_validate_json(await request.body()), {}
    fields, files = await _read_form(request, services.settings.max_image_bytes, parts, max_files)
    return schema.model_validate({**fields, **{parts[part]: "" for part in files}}), files


async def _read_form(
    request: Request, max_bytes: int, parts: Mapping[str, str], max_files: int
) -> tuple[dict[str, str], dict[str, bytes]]:
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    async with request.form(max_files=max_files, max_fields=MAX_FORM_FIELDS) as form:
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                fields[name] = value
            elif name not in parts:
                raise InvalidRequest(f"{name}: not a file part of this endpoint; send images as {_names(parts)}")
            else:
                files[name] = await value.read(max_bytes + 1)
                if len(files[name]) > max_bytes:
                    raise ImageTooLarge(f"{name}: the upload is over the {max_bytes} byte limit")
    for part, field in parts.items():
        if part in files and field in fields:
            raise InvalidRequest(f"{field}: the image came as the file part `{part}`; send one of the two")
    return fields, files


def _names(parts: Mapping[str, str]) -> str:
    return " or ".join(f"`{part}`" for part in parts)


async def input_image(
    services: Services, files: Mapping[str, bytes], parts: Mapping[str, str], field: str, value: str | None
) -> InputImage | None:
    """The image that stands for the JSON field `field`: its file part, else the field's value (URL, data URL or
    base64); None when neither was sent."""
    for part, stands_for in parts.items():
        if stands_for == field and part in files:
            return image_from_bytes(files[part], services.limits)
    return await read_image(services, value, field) if value else None


def form_schema(schema: type[BaseModel], parts: Mapping[str, str], required: list[str]) -> dict[str, Any]:
    """The OpenAPI schema of the multipart form that stands for `schema`'s JSON: its fields, with the image
    fields replaced by binary file parts."""
    json_schema = schema.model_json_schema()
    properties: dict[str, Any] = {
        name: spec for name, spec in json_schema["properties"].items() if name not in parts.values()
    }
    for part, field in parts.items():
        properties[part] = {
            "type": "string",
            "format": "binary",
            "description": f"The image file itself (instead of `{field}`).",
        }
    return {"type": "object", "required": required, "properties": properties}


def request_body(schema: type[BaseModel], parts: Mapping[str, str], required_parts: list[str]) -> dict[str, Any]:
    """`openapi_extra` of a route that reads its body by hand (`read_body`): FastAPI lists no schema for it."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema.model_json_schema()},
                "multipart/form-data": {"schema": form_schema(schema, parts, required_parts)},
            },
        }
    }
