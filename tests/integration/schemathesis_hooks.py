"""Schemathesis hooks for the stateful run (loaded through SCHEMATHESIS_HOOKS): a submitted prediction carries a
real image, so that `POST /v1/run` answers 201 and the links from it (poll, cancel) are followed; every other field
of the body stays generated."""

from __future__ import annotations

from typing import Any

import schemathesis

from replate.imageio import encode_image
from tests.conftest import data_url
from tests.synthetic import make_studio_shot

IMAGE = data_url(encode_image(make_studio_shot(96, 72, seed=5)[0], "png"))


@schemathesis.hook("map_body").apply_to(method="POST", path="/v1/run")
def submit_a_real_image(_context: schemathesis.HookContext, body: Any) -> Any:
    if isinstance(body, dict) and "image" in body:
        return {**body, "image": IMAGE}
    return body
