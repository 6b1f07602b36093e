"""The one error tree of replate. The library knows machine codes, never HTTP.

    ReplateError                      code = "internal"
    ├── InvalidRequest                code = "invalid_request"
    │   └── ConflictingSceneSources   code = "conflicting_scene_sources"
    ├── ImageError
    │   ├── ImageCorrupt              code = "image_corrupt"
    │   ├── ImageTooLarge             code = "image_too_large"
    │   └── ImageFormatUnsupported    code = "image_format_unsupported"
    ├── SubjectNotFound               code = "subject_not_found"
    └── Unavailable                   code = "unavailable"

Codes are public and stable: the gateway maps them to HTTP and gRPC statuses (gateway/errors.py), and Triton
models send them as the prefix of their error messages (`image_corrupt: ...`, see `format_error`/`parse_error`).
"""

from __future__ import annotations

import re
from typing import ClassVar


class ReplateError(Exception):
    """Base of every error replate raises on purpose; `code` is the public machine code."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ReplateError):
    code = "invalid_request"


class ConflictingSceneSources(InvalidRequest):
    code = "conflicting_scene_sources"


class ImageError(ReplateError):
    """Something is wrong with an input image."""


class ImageCorrupt(ImageError):
    code = "image_corrupt"


class ImageTooLarge(ImageError):
    code = "image_too_large"


class ImageFormatUnsupported(ImageError):
    code = "image_format_unsupported"


class SubjectNotFound(ReplateError):
    code = "subject_not_found"


class Unavailable(ReplateError):
    code = "unavailable"


def _all_subclasses(cls: type[ReplateError]) -> list[type[ReplateError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_class_for(code: str) -> type[ReplateError]:
    """The error class that owns `code`; unknown codes map to the base class (`internal`)."""
    for cls in _all_subclasses(ReplateError):
        if cls.code == code and "code" in cls.__dict__:
            return cls
    return ReplateError


def format_error(error: ReplateError) -> str:
    """Render an error as the `code: message` text Triton models return."""
    return f"{error.code}: {error.message}"


_CODE_PREFIX = re.compile(r"\b([a-z][a-z_]*): ")


def parse_error(text: str) -> ReplateError:
    """Rebuild a coded error from a `code: message` text, also when Triton put a prefix before it; anything else
    becomes an `internal` error carrying the whole text."""
    for match in _CODE_PREFIX.finditer(text):
        cls = error_class_for(match.group(1))
        if cls is not ReplateError:
            return cls(text[match.end() :])
    return ReplateError(text)
