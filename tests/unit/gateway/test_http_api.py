"""The HTTP API over the real gateway app, with the pipelines run in-process (no Triton): contract shapes, error
codes, and that every failure leaves the balance untouched."""

from __future__ import annotations

import base64
import io
import json
import logging
import re

import httpx
import numpy as np
import pytest
from PIL import Image

from gateway.app import create_app
from gateway.logs import JsonFormatter
from replate.errors import Unavailable
from tests.conftest import data_url
from tests.unit.gateway.conftest import auth, running_client


async def available(client: httpx.AsyncClient, key: str) -> int:
    response = await client.get("/v1/credits", headers=auth(key))
    assert response.status_code == 200
    return response.json()["available"]


async def test_replace_background_returns_a_stored_output_and_charges_5(client, make_key, studio_png) -> None:
    key = await make_key(100)
    body = {"image_url": data_url(studio_png), "scene_prompt": "modern kitchen counter with morning light", "seed": 7}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    result = response.json()
    assert response.headers["x-credits-charged"] == "5"
    assert response.headers["x-remaining-credits"] == "95"
    assert (result["width"], result["height"], result["seed"], result["credits_charged"]) == (320, 240, 7, 5)
    assert result["engines"] == {"matting": "studio", "scene": "studio"}
    assert result["output_url"].startswith("http://replate.test/v1/outputs/")
    output = await client.get(result["output_url"])  # no API key needed
    assert output.status_code == 200 and output.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(output.content)).size == (320, 240)


async def test_harmonize_and_shadow_reach_the_pipeline_and_the_lighting_comes_back(
    client, make_key, studio_png
) -> None:
    key = await make_key(100)
    body = {
        "image_url": data_url(studio_png),
        "scene_prompt": "grey studio",
        "harmonize": 0.5,
        "shadow": "contact",
        "preserve_shadow": False,
        "num_outputs": 2,
        "return_base64": True,
    }
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["engines"] == {"matting": "studio", "scene": "studio", "harmonize": "classical"}
    assert [entry["shadow"] for entry in result["lighting"]] == ["contact", "contact"]
    assert set(result["lighting"][0]["scene"]) == {"azimuth_deg", "strength"}
    plain = {"image_url": data_url(studio_png), "bg_color": "#102030", "return_base64": True}
    response = await client.post("/v1/image/replace-background", json=plain, headers=auth(key))
    assert response.json()["lighting"] == [], "nothing was estimated, nothing is reported"


async def test_an_unknown_shadow_is_refused_and_costs_nothing(client, make_key, studio_png) -> None:
    key = await make_key(10)
    body = {"image_url": data_url(studio_png), "bg_color": "#102030", "shadow": "drop"}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 422 and "shadow" in response.json()["error"]["message"]
    assert response.headers["x-remaining-credits"] == "10"


async def test_remaining_credits_after_a_charge_equal_the_ledger_on_each_database(
    db_client, db_make_key, studio_png
) -> None:
    key = await db_make_key(100)
    body = {"image_url": data_url(studio_png), "bg_color": "#102030", "return_base64": True}
    charged = await db_client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert charged.status_code == 200, charged.text
    credits = await db_client.get("/v1/credits", headers=auth(key))
    assert credits.json() == {"balance": 95, "held": 0, "available": 95}
    assert charged.headers["x-remaining-credits"] == credits.headers["x-remaining-credits"] == "95"


async def test_num_outputs_is_charged_per_output_and_base64_stores_nothing(
    client, make_key, studio_png, settings
) -> None:
    key = await make_key(100)
    body = {
        "image_url": data_url(studio_png),
        "bg_color": "#102030",
        "num_outputs": 3,
        "return_base64": True,
        "output_format": "jpeg",
    }
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert len(outputs) == 3 and all(url.startswith("data:image/jpeg;base64,") for url in outputs)
    assert response.headers["x-credits-charged"] == "15"
    assert await available(client, key) == 85
    assert not any(settings.outputs_dir.iterdir())


async def test_remove_background_rgba_and_alpha(client, make_key, studio_png) -> None:
    key = await make_key(10)
    rgba = await client.post("/v1/remove-background", json={"image": data_url(studio_png)}, headers=auth(key))
    assert rgba.status_code == 200, rgba.text
    assert rgba.headers["content-type"] == "image/png" and rgba.headers["x-credits-charged"] == "1"
    assert Image.open(io.BytesIO(rgba.content)).mode == "RGBA"
    body = {"image": base64.b64encode(studio_png).decode(), "channels": "alpha", "return_base64": True}
    alpha = await client.post("/v1/remove-background", json=body, headers=auth(key))
    assert alpha.status_code == 200, alpha.text
    payload = alpha.json()
    matte = Image.open(io.BytesIO(base64.b64decode(payload["image"].split(",", 1)[1])))
    assert matte.mode == "L" and (payload["width"], payload["height"]) == (320, 240)
    assert alpha.headers["x-remaining-credits"] == "8"


@pytest.mark.parametrize(
    ("image_url", "status", "code"),
    [
        ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB", 422, "image_corrupt"),  # truncated PNG
        (data_url(b"just some text, not an image"), 415, "image_format_unsupported"),
        (data_url(b"BM" + b"\0" * 64, "image/bmp"), 415, "image_format_unsupported"),
        ("data:image/png;base64,@@@not-base64@@@", 422, "invalid_request"),
        ("http://intranet.example/photo.jpg", 422, "url_forbidden"),
        ("http://169.254.169.254/latest/meta-data/", 422, "url_forbidden"),
        ("http://[::1]:8080/photo.png", 422, "url_forbidden"),
    ],
)
async def test_bad_images_are_refused_and_cost_nothing(client, make_key, image_url, status, code) -> None:
    key = await make_key(20)
    body = {"image_url": image_url, "bg_color": "#ffffff"}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["x-remaining-credits"] == "20"
    assert "x-credits-charged" not in response.headers


async def test_corrupt_pixel_data_found_only_at_decode_costs_nothing(client, make_key, studio_jpeg, pipelines) -> None:
    key = await make_key(20)
    truncated = studio_jpeg[: len(studio_jpeg) // 2]  # the header is intact, so the gateway's sniff passes
    body = {"image_url": data_url(truncated, "image/jpeg"), "bg_color": "#ffffff"}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 422 and response.json()["error"]["code"] == "image_corrupt"
    assert pipelines.calls == ["replace_background"]
    assert response.headers["x-remaining-credits"] == "20"
    assert (await client.get("/v1/credits", headers=auth(key))).json()["held"] == 0


async def test_oversized_images_are_413_before_any_work(settings, make_key, pipelines) -> None:
    small = settings.model_copy(update={"max_image_megapixels": 0.01})
    app = create_app(small, pipelines=pipelines)
    big = io.BytesIO()
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(big, "PNG")
    key = await make_key(20)
    async with running_client(app) as client:
        body = {"image_url": data_url(big.getvalue()), "bg_color": "#ffffff"}
        response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"
    assert response.headers["x-remaining-credits"] == "20"
    assert pipelines.calls == []


async def test_subject_not_found_costs_nothing(client, make_key) -> None:
    key = await make_key(20)
    blank = io.BytesIO()
    Image.new("RGB", (200, 150), (240, 240, 240)).save(blank, "PNG")
    body = {"image_url": data_url(blank.getvalue()), "bg_color": "#000000"}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 422 and response.json()["error"]["code"] == "subject_not_found"
    assert response.headers["x-remaining-credits"] == "20"


async def test_unavailable_triton_is_503_with_retry_after_and_costs_nothing(
    client, make_key, studio_png, pipelines
) -> None:
    pipelines.fail_with = Unavailable("the inference server is unavailable; try again shortly")
    key = await make_key(20)
    body = {"image_url": data_url(studio_png), "bg_color": "#ffffff"}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["x-remaining-credits"] == "20"
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {"triton": False, "database": True}


async def test_insufficient_credits_is_406_and_runs_nothing(client, make_key, studio_png, pipelines) -> None:
    key = await make_key(4)
    body = {"image_url": data_url(studio_png), "bg_color": "#ffffff"}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 406 and response.json()["error"]["code"] == "insufficient_credits"
    assert response.headers["x-remaining-credits"] == "4"
    assert pipelines.calls == []


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"bg_color": "#fff", "scene_prompt": "beach"}, "conflicting_scene_sources", "bg_color"),
        ({"bg_color": None}, "invalid_request", "scene_prompt"),
        ({"num_outputs": 5}, "invalid_request", "num_outputs"),
        ({"output_format": "gif"}, "invalid_request", "output_format"),
        ({"seed": -1}, "invalid_request", "seed"),
        ({"sceneprompt": "typo"}, "invalid_request", "sceneprompt"),
    ],
)
async def test_invalid_requests_name_the_field_and_cost_nothing(
    client, make_key, studio_png, changes, code, field
) -> None:
    key = await make_key(20)
    body = {"image_url": data_url(studio_png), "bg_color": "#ffffff", **changes}
    response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and field in error["message"]
    assert response.headers["x-remaining-credits"] == "20"


async def test_authentication(client, make_key) -> None:
    key = await make_key(3)
    assert (await client.get("/v1/credits")).json()["error"]["code"] == "unauthorized"
    assert (await client.get("/v1/credits", headers={"Authorization": "Bearer nope"})).status_code == 401
    by_header = await client.get("/v1/credits", headers={"x-api-key": key})
    assert by_header.json() == {"balance": 3, "held": 0, "available": 3}
    assert by_header.headers["x-remaining-credits"] == "3"


async def test_request_id_is_echoed_and_system_endpoints_answer(client) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "client-chosen-id-1"})
    assert response.headers["x-request-id"] == "client-chosen-id-1"
    assert len((await client.get("/healthz")).headers["x-request-id"]) == 32
    assert (await client.get("/readyz")).json()["checks"] == {"triton": True, "database": True}
    assert "replate_http_requests_total" in (await client.get("/metrics")).text
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/image/replace-background", "/v1/remove-background", "/v1/credits"} <= set(spec["paths"])


async def test_every_reference_in_the_openapi_document_resolves(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    references = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert references and references <= set(spec["components"]["schemas"])


async def test_output_urls_are_signed(client, make_key, studio_png) -> None:
    body = {"image_url": data_url(studio_png), "bg_color": "#ffffff"}

    async def output_url(key: str) -> httpx.URL:
        response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
        return httpx.URL(response.json()["output_url"])

    url, other_accounts = await output_url(await make_key(100)), await output_url(await make_key(100))
    assert (await client.get(url)).status_code == 200
    forged = url.copy_set_param("sig", "0" * 64)
    longer = url.copy_set_param("expires", str(int(url.params["expires"]) + 3600))
    transplanted = url.copy_merge_params(
        {"expires": other_accounts.params["expires"], "sig": other_accounts.params["sig"]}
    )
    unknown = url.copy_with(path="/v1/outputs/" + "a" * 43 + ".png")
    for bad in (url.copy_with(query=None), forged, longer, transplanted, unknown):
        response = await client.get(bad)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


async def test_metrics_describe_requests_credits_and_predictions(client, make_key, studio_png) -> None:
    key = await make_key(100)
    body = {"image_url": data_url(studio_png), "bg_color": "#ffffff", "num_outputs": 2}
    assert (await client.post("/v1/image/replace-background", json=body, headers=auth(key))).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'replate_http_requests_total{route="/v1/image/replace-background",status="200"} 1.0' in text
    assert 'replate_credits_charged_total{operation="replace_background"} 10.0' in text
    assert "replate_credit_holds_outstanding 0.0" in text
    assert 'replate_predictions{status="starting"} 0.0' in text
    assert 'replate_triton_request_duration_seconds_count{model="replace_background"} 1.0' in text


async def test_access_logs_are_json_with_the_request_id(client) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("replate.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        await client.get("/healthz", headers={"x-request-id": "trace-me-12345"})
    finally:
        access.removeHandler(handler)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["request_id"] == "trace-me-12345" and entry["status"] == 200 and entry["route"] == "/healthz"
    assert entry["message"] == "GET /healthz 200" and entry["duration_ms"] >= 0


async def test_an_oversized_body_is_413_before_it_is_read(settings, make_key, pipelines) -> None:
    app = create_app(settings.model_copy(update={"max_image_bytes": 1000}), pipelines=pipelines)
    key = await make_key(20)
    async with running_client(app) as client:
        body = {"image_url": "A" * 10_000, "bg_color": "#ffffff"}
        response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
    assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"
    assert pipelines.calls == []
