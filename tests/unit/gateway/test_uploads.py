"""Multipart uploads on the native image endpoints (gateway/routes/_uploads.py): the image as a raw file part, the
other fields as form fields; every bad upload is a 4xx with a code and costs nothing."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from gateway.app import create_app
from tests.conftest import data_url
from tests.unit.gateway.conftest import auth, running_client

REPLACE = "/v1/image/replace-background"
REMOVE = "/v1/remove-background"


def png_file(data: bytes, name: str = "photo.png", mime: str = "image/png") -> tuple[str, bytes, str]:
    return (name, data, mime)


async def test_replace_background_takes_the_photo_as_a_file_part(client, make_key, studio_png) -> None:
    key = await make_key(100)
    fields = {"scene_prompt": "grey studio", "seed": "7", "num_outputs": "2", "preserve_shadow": "false"}
    response = await client.post(REPLACE, data=fields, files={"image": png_file(studio_png)}, headers=auth(key))
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["width"], result["height"], result["seed"], result["credits_charged"]) == (320, 240, 7, 10)
    assert response.headers["x-remaining-credits"] == "90"
    output = await client.get(result["outputs"][1])
    assert Image.open(io.BytesIO(output.content)).size == (320, 240)


async def test_the_answer_is_the_same_as_for_json(client, make_key, studio_png) -> None:
    key = await make_key(100)
    fields = {"bg_color": "#102030", "seed": "3", "return_base64": "true"}
    uploaded = await client.post(REPLACE, data=fields, files={"image": png_file(studio_png)}, headers=auth(key))
    body = {"image_url": data_url(studio_png), "bg_color": "#102030", "seed": 3, "return_base64": True}
    sent_as_json = await client.post(REPLACE, json=body, headers=auth(key))
    assert uploaded.status_code == sent_as_json.status_code == 200
    assert uploaded.json()["outputs"] == sent_as_json.json()["outputs"]


async def test_a_reference_scene_can_be_a_file_part_too(client, make_key, studio_png, studio_jpeg) -> None:
    key = await make_key(100)
    files = {"image": png_file(studio_png), "scene_image": png_file(studio_jpeg, "scene.jpg", "image/jpeg")}
    response = await client.post(REPLACE, files=files, headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["engines"]["scene"] == "reference"


async def test_remove_background_takes_the_image_part(client, make_key, studio_png) -> None:
    key = await make_key(10)
    response = await client.post(REMOVE, files={"image": png_file(studio_png)}, headers=auth(key))
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).mode == "RGBA"
    assert response.headers["x-remaining-credits"] == "9"


@pytest.mark.parametrize(
    ("path", "files", "fields", "status", "code"),
    [
        (REPLACE, {"photo": png_file(b"\x89PNG")}, {"bg_color": "#fff"}, 422, "invalid_request"),  # unknown part
        (REPLACE, {}, {"bg_color": "#fff", "seed": "1"}, 422, "invalid_request"),  # no image at all
        (
            REPLACE,
            {"image": png_file(b"just text", "a.txt", "text/plain")},
            {"bg_color": "#fff"},
            415,
            "image_format_unsupported",
        ),
        (REPLACE, {"image": png_file(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)}, {"bg_color": "#fff"}, 422, "image_corrupt"),
        (REPLACE, {"image": png_file(b"x")}, {"bg_color": "#fff", "image_url": "data:,"}, 422, "invalid_request"),
        (REPLACE, {"image": png_file(b"x")}, {"bg_color": "#fff", "seed": "minus one"}, 422, "invalid_request"),
        (REPLACE, {"image": png_file(b"x")}, {"bg_color": "#fff", "colour": "red"}, 422, "invalid_request"),
        (REMOVE, {"image": png_file(b"x"), "file": png_file(b"y")}, {}, 400, "invalid_request"),  # one file only
        (REMOVE, {"image": png_file(b"GIF87a")}, {"channels": "cmyk"}, 422, "invalid_request"),
    ],
    ids=[
        "unknown part",
        "no image",
        "not an image",
        "corrupt image",
        "image and image_url",
        "bad seed",
        "unknown field",
        "two files",
        "bad option",
    ],
)
async def test_bad_uploads_are_4xx_with_a_code_and_cost_nothing(
    client, make_key, pipelines, path, files, fields, status, code
) -> None:
    key = await make_key(20)
    response = await client.post(path, data=fields, files=files or None, headers=auth(key))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["x-remaining-credits"] == "20"
    assert pipelines.calls == []


async def test_an_upload_over_the_byte_limit_is_413_and_costs_nothing(settings, make_key, pipelines) -> None:
    small = settings.model_copy(update={"max_image_bytes": 1000})
    key = await make_key(20)
    async with running_client(create_app(small, pipelines=pipelines)) as client:
        files = {"image": png_file(b"\x89PNG\r\n\x1a\n" + b"\0" * 2000)}
        response = await client.post(REPLACE, data={"bg_color": "#fff"}, files=files, headers=auth(key))
        assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"
        assert (await client.get("/v1/credits", headers=auth(key))).json() == {
            "balance": 20,
            "held": 0,
            "available": 20,
        }
    assert pipelines.calls == []


async def test_the_openapi_document_lists_both_bodies(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, part, field in ((REPLACE, "image", "image_url"), (REMOVE, "image", "image")):
        content = paths[path]["post"]["requestBody"]["content"]
        assert field in content["application/json"]["schema"]["properties"]
        form = content["multipart/form-data"]["schema"]["properties"]
        assert form[part]["format"] == "binary"
    replace_form = paths[REPLACE]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert replace_form["required"] == ["image"] and "image_url" not in replace_form["properties"]
