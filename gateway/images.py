"""Image fields of a request: a data URL or bare base64 -> bytes, sniffed against the limits before any charge."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gateway.errors import UrlFetchFailed
from replate.errors import ImageTooLarge, InvalidRequest
from replate.imageio import ImageInfo, ImageLimits, probe_image


@dataclass(frozen=True)
class InputImage:
    data: bytes
    info: ImageInfo


def read_image_field(value: str, field: str, limits: ImageLimits) -> InputImage:
    """Decode an image field and check its header (format, size) without decoding pixels."""
    data = _field_bytes(value.strip(), field, limits)
    return InputImage(data=data, info=probe_image(data, limits))


def _field_bytes(value: str, field: str, limits: ImageLimits) -> bytes:
    if value.startswith(("http://", "https://")):
        raise UrlFetchFailed(f"{field}: fetching http(s) URLs is not enabled on this server; send a data URL instead")
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
