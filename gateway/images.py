"""Image fields of a request: an http(s) URL (fetched safely), a data URL or bare base64 -> bytes, sniffed against
the limits before any charge."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gateway.fetch import FetchPolicy, Resolver, fetch_url
from replate.errors import ImageTooLarge, InvalidRequest
from replate.imageio import ImageInfo, ImageLimits, probe_image


@dataclass(frozen=True)
class InputImage:
    data: bytes
    info: ImageInfo


async def read_image_field(
    value: str, field: str, limits: ImageLimits, policy: FetchPolicy, resolver: Resolver | None = None
) -> InputImage:
    """Get an image field's bytes and check their header (format, size) without decoding pixels."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        data = await fetch_url(value, field, policy, resolver=resolver)
    else:
        data = _inline_bytes(value, field, limits)
    return image_from_bytes(data, limits)


def image_from_bytes(data: bytes, limits: ImageLimits) -> InputImage:
    return InputImage(data=data, info=probe_image(data, limits))


def _inline_bytes(value: str, field: str, limits: ImageLimits) -> bytes:
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidRequest(f"{field}: a data URL must look like 'data:image/png;base64,<data>'")
    if len(value) * 3 // 4 > limits.max_bytes:
        raise ImageTooLarge(f"{field}: the image is over the {limits.max_bytes // (1024 * 1024)} MB limit")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{field}: not a URL, a data URL or valid base64 ({exc})") from exc
