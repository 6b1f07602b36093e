"""The hosted APIs' own client samples, changed only in host and key, against the real stack (Triton on the CPU)."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
import requests

from tests.integration.conftest import GatewayThread

pytestmark = pytest.mark.slow


def test_segmind_style_bg_replace_sample(gateway: GatewayThread, make_key, studio_jpeg: bytes, tmp_path) -> None:
    api_key = make_key_sync(make_key, 100)
    url = f"{gateway.url}/v1/bg-replace"  # was the hosted API's URL
    image_path = tmp_path / "product.jpg"
    image_path.write_bytes(studio_jpeg)

    def image_file_to_base64(path) -> str:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode("utf-8")

    data = {
        "image": image_file_to_base64(image_path),
        "ref_image": image_file_to_base64(image_path),
        "prompt": "a product on a marble kitchen counter",
        "negative_prompt": "bad quality, painting, blur",
        "samples": 1,
        "scheduler": "DDIM",
        "num_inference_steps": 25,
        "guidance_scale": 7.5,
        "seed": 12467,
        "strength": 1,
        "cn_weight": 0.9,
        "ip_adapter_weight": 0.5,
        "base64": False,
    }
    response = requests.post(url, json=data, headers={"x-api-key": api_key}, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg" and response.content[:2] == b"\xff\xd8"
    assert response.headers["x-credits-charged"] == "5"


def test_universal_run_endpoint_sample(gateway: GatewayThread, make_key, studio_jpeg: bytes) -> None:
    api_key = make_key_sync(make_key, 100)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    payload = {
        "model": "background-change",
        "image": base64.b64encode(studio_jpeg).decode(),
        "prompt": "modern kitchen counter with morning light",
        "seed": 42,
    }
    created = requests.post(f"{gateway.url}/v1/run", json=payload, headers=headers, timeout=60)
    assert created.status_code == 201, created.text
    prediction_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        prediction = requests.get(f"{gateway.url}/v1/predictions/{prediction_id}", headers=headers, timeout=30).json()
        if prediction["status"] in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert prediction["status"] == "succeeded", prediction
    output = requests.get(prediction["output"][0], timeout=30)
    assert output.status_code == 200 and output.headers["content-type"] == "image/png"


def make_key_sync(make_key, credits: int) -> str:
    return asyncio.run(make_key(credits))
