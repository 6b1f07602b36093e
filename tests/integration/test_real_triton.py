"""The whole request path against the real tritonserver: gateway -> Triton (BLS -> matting) -> composite."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from gateway.tritonserver import TritonServer
from replate.imageio import encode_image
from tests.conftest import data_url
from tests.integration.conftest import GatewayThread
from tests.synthetic import make_studio_shot

pytestmark = pytest.mark.slow


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


async def test_contract_example_replaces_the_background(gateway, make_key, studio_jpeg) -> None:
    key = await make_key(1000)
    body = {
        "image_url": data_url(studio_jpeg, "image/jpeg"),
        "scene_prompt": "modern kitchen counter with morning light",
    }
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
        assert response.status_code == 200, response.text
        result = response.json()
        assert response.headers["x-credits-charged"] == "5" and response.headers["x-remaining-credits"] == "995"
        assert result["engines"] == {"matting": "studio", "scene": "studio"}
        output = await client.get(result["output_url"])
    assert output.status_code == 200
    assert Image.open(io.BytesIO(output.content)).size == (320, 240) == (result["width"], result["height"])


async def test_opaque_subject_pixels_are_bit_exact(gateway, make_key) -> None:
    rgb, _true_alpha = make_studio_shot(480, 360, seed=11)
    image = data_url(encode_image(rgb, "png"))
    key = await make_key(100)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        matte = await client.post(
            "/v1/remove-background", json={"image": image, "channels": "alpha"}, headers=auth(key)
        )
        replaced = await client.post(
            "/v1/image/replace-background",
            json={"image_url": image, "bg_color": "#2050c0", "return_base64": True},
            headers=auth(key),
        )
    assert matte.status_code == 200 and replaced.status_code == 200, replaced.text
    alpha = pixels(matte.content)
    output = pixels(base64.b64decode(replaced.json()["output_url"].split(",", 1)[1]))
    opaque = alpha == 255
    assert opaque.mean() > 0.05, "the matte must hold a real opaque subject for this test to mean anything"
    assert np.array_equal(output[opaque], rgb[opaque])
    assert not np.array_equal(output[alpha == 0], rgb[alpha == 0]), "the backdrop must have been replaced"


async def test_harmonisation_and_a_contact_shadow_through_gateway_and_triton(gateway, make_key) -> None:
    rgb, _true_alpha = make_studio_shot(480, 360, seed=11)
    image = data_url(encode_image(rgb, "png"))
    key = await make_key(100)
    scene = {"image_url": image, "scene_prompt": "warm studio, light from the left", "seed": 3, "return_base64": True}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        matte = await client.post(
            "/v1/remove-background", json={"image": image, "channels": "alpha"}, headers=auth(key)
        )
        pasted = await client.post(
            "/v1/image/replace-background",
            json={**scene, "preserve_shadow": False, "shadow": "none"},
            headers=auth(key),
        )
        placed = await client.post(
            "/v1/image/replace-background",
            json={**scene, "preserve_shadow": False, "harmonize": 0.5, "shadow": "contact"},
            headers=auth(key),
        )
    assert placed.status_code == 200 and pasted.status_code == 200, placed.text
    result = placed.json()
    assert result["engines"] == {"matting": "studio", "scene": "studio", "harmonize": "classical"}
    (lighting,) = result["lighting"]
    assert lighting["shadow"] == "contact" and lighting["harmonize"] == 0.5
    assert 90 < lighting["scene"]["azimuth_deg"] < 270, "the studio was asked for light from the left"
    assert pasted.json()["lighting"] == []
    alpha = pixels(matte.content)
    before = pixels(base64.b64decode(pasted.json()["output_url"].split(",", 1)[1])).astype(int)
    after = pixels(base64.b64decode(result["output_url"].split(",", 1)[1])).astype(int)
    opaque = alpha == 255
    assert np.abs(after[opaque] - before[opaque]).mean() > 1.0, "the subject was harmonised"
    rows = np.flatnonzero((alpha > 128).sum(axis=1) > 3)
    floor = np.zeros_like(opaque)
    floor[rows[-1] + 2 : rows[-1] + 12] = True
    floor &= (alpha == 0) & (np.abs(np.arange(alpha.shape[1]) - np.nonzero(opaque)[1].mean()) < 60)[None, :]
    assert floor.sum() > 100 and (after[floor].sum(axis=1) < before[floor].sum(axis=1) - 6).mean() > 0.8, "shadow"
    far = np.zeros_like(opaque)
    far[:40, :40] = True
    assert np.array_equal(after[far], before[far]), "the scene away from the subject is untouched"


@pytest.mark.parametrize(
    ("make_image", "status", "code"),
    [
        (lambda jpeg: jpeg[: len(jpeg) // 2], 422, "image_corrupt"),
        (lambda jpeg: encode_image(np.full((120, 160, 3), 200, np.uint8), "png"), 422, "subject_not_found"),
    ],
)
async def test_errors_raised_inside_triton_keep_their_code_and_cost_nothing(
    gateway, make_key, studio_jpeg, make_image, status, code
) -> None:
    key = await make_key(10)
    body = {"image_url": data_url(make_image(studio_jpeg)), "bg_color": "#ffffff"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
        credits = (await client.get("/v1/credits", headers=auth(key))).json()
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert credits == {"balance": 10, "held": 0, "available": 10}


async def test_triton_killed_mid_request_releases_the_hold(settings, own_triton: TritonServer, make_key) -> None:
    rgb, _ = make_studio_shot(2400, 1800, seed=5)  # 4.3 MP: long enough to be killed in the middle
    body = {"image_url": data_url(encode_image(rgb, "png")), "scene_prompt": "warm studio", "num_outputs": 4}
    key = await make_key(100)
    with GatewayThread(settings.model_copy(update={"triton_url": own_triton.grpc_url})) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            held_seen = threading.Event()

            def kill_when_held() -> None:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if httpx.get(f"{gateway.url}/v1/credits", headers=auth(key)).json()["held"] == 20:
                        held_seen.set()
                        time.sleep(0.3)
                        own_triton.kill()
                        return
                    time.sleep(0.02)

            killer = threading.Thread(target=kill_when_held)
            killer.start()
            response = await client.post("/v1/image/replace-background", json=body, headers=auth(key))
            killer.join()
            credits = (await client.get("/v1/credits", headers=auth(key))).json()
    assert held_seen.is_set(), "the request finished before Triton could be killed"
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert credits == {"balance": 100, "held": 0, "available": 100}
