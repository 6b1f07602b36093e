"""Clients of the hosted APIs replate replaces: Segmind-style /v1/bg-replace and remove.bg's /v1.0/removebg."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.conftest import data_url
from tests.unit.gateway.conftest import auth


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


async def test_bg_replace_returns_jpeg_bytes(client, make_key, studio_png) -> None:
    key = await make_key(50)
    body = {"image": base64.b64encode(studio_png).decode(), "prompt": "sunset beach", "num_inference_steps": 25}
    response = await client.post("/v1/bg-replace", json=body, headers={"x-api-key": key})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert image_of(response.content).size == (320, 240)
    assert response.headers["x-credits-charged"] == "5" and response.headers["x-remaining-credits"] == "45"
    assert response.headers["x-engines"] == "matting=studio,scene=studio"


async def test_bg_replace_base64_with_samples(client, make_key, studio_png) -> None:
    key = await make_key(50)
    body = {"image": data_url(studio_png), "prompt": "white marble", "samples": 2, "seed": 5, "base64": True}
    response = await client.post("/v1/bg-replace", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert len(images) == 2 and images[0] != images[1]
    assert image_of(base64.b64decode(images[1])).format == "JPEG"
    assert response.headers["x-credits-charged"] == "10"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"num_inference_steps": 10}, "num_inference_steps"),
        ({"guidance_scale": 30}, "guidance_scale"),
        ({"strength": 1.5}, "strength"),
        ({"samples": 5}, "samples"),
        ({"seed": -2}, "seed"),
        ({"prompt": None}, "prompt"),
    ],
)
async def test_bg_replace_out_of_range_fields_are_named(client, make_key, studio_png, changes, field) -> None:
    key = await make_key(50)
    body = {"image": data_url(studio_png), "prompt": "beach", **changes}
    response = await client.post("/v1/bg-replace", json=body, headers=auth(key))
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]
    assert response.headers["x-remaining-credits"] == "50"


async def test_removebg_multipart_like_the_remove_bg_clients(client, make_key, studio_png) -> None:
    key = await make_key(10)
    response = await client.post(
        "/v1.0/removebg",
        files={"image_file": ("photo.png", studio_png, "image/png")},
        data={"size": "auto"},
        headers={"X-Api-Key": key},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert image_of(response.content).mode == "RGBA"
    assert (response.headers["X-Credits-Charged"], response.headers["X-Width"], response.headers["X-Height"]) == (
        "1",
        "320",
        "240",
    )
    assert response.headers["x-remaining-credits"] == "9"


async def test_removebg_with_a_background_colour_and_jpg(client, make_key, studio_png) -> None:
    key = await make_key(10)
    body = {"image_file_b64": base64.b64encode(studio_png).decode(), "bg_color": "81d4fa", "format": "jpg"}
    response = await client.post("/v1.0/removebg", json=body, headers={"X-Api-Key": key})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    corner = image_of(response.content).convert("RGB").getpixel((2, 2))
    assert all(abs(a - b) <= 6 for a, b in zip(corner, (0x81, 0xD4, 0xFA), strict=True))
    assert response.headers["x-credits-charged"] == "1"


@pytest.mark.parametrize(
    ("headers", "fields", "status", "code"),
    [
        ({"X-Api-Key": "wrong"}, {"size": "auto"}, 403, "unauthorized"),
        (None, {"size": "preview"}, 400, "invalid_request"),
        (None, {"format": "zip"}, 400, "invalid_request"),
        (None, {"crop": "true"}, 400, "invalid_request"),
        (None, {"type": "person"}, 400, "invalid_request"),
        (None, {"roi": "0% 0% 50% 50%"}, 400, "invalid_request"),
    ],
)
async def test_removebg_errors_in_remove_bg_shape(client, make_key, studio_png, headers, fields, status, code) -> None:
    key = await make_key(10)
    response = await client.post(
        "/v1.0/removebg",
        files={"image_file": ("photo.png", studio_png, "image/png")},
        data=fields,
        headers=headers or {"X-Api-Key": key},
    )
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert errors[0]["code"] == code and errors[0]["title"]


async def test_removebg_without_credits_is_402(client, make_key, studio_png) -> None:
    key = await make_key(0)
    response = await client.post(
        "/v1.0/removebg", files={"image_file": ("p.png", studio_png, "image/png")}, headers={"X-Api-Key": key}
    )
    assert response.status_code == 402 and response.json()["errors"][0]["code"] == "insufficient_credits"


async def test_remove_background_accepts_a_multipart_upload(client, make_key, studio_png) -> None:
    key = await make_key(10)
    response = await client.post(
        "/v1/remove-background",
        files={"file": ("photo.png", studio_png, "image/png")},
        data={"channels": "alpha", "return_base64": "true"},
        headers=auth(key),
    )
    assert response.status_code == 200, response.text
    matte = image_of(base64.b64decode(response.json()["image"].split(",", 1)[1]))
    assert matte.mode == "L" and matte.size == (320, 240)
