"""A segmenter given by path (a BiRefNet-format ONNX file, 1024 x 1024, logits out) served by real Triton: the
setting reaches both `matting_segmenter` and `matting`, and remove-background says which segmenter made the matte."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from export.matting import ColourKeySegmenter, export_segmenter
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from replate.imageio import encode_image
from tests.conftest import data_url
from tests.integration.conftest import GatewayThread
from tests.synthetic import red_disc_on_green_texture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def birefnet_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    folder = tmp_path_factory.mktemp("segmenter")
    keyed = export_segmenter(ColourKeySegmenter(logits=True), folder / "keyed-birefnet.onnx", size=1024)
    with TritonServer(folder / "triton", Settings().models_dir, segmenter=(str(keyed), "birefnet")) as server:
        yield server


async def test_remove_background_runs_the_configured_segmenter(settings, birefnet_triton, make_key) -> None:
    image, disc = red_disc_on_green_texture(360, 540)
    key = await make_key(10)
    with GatewayThread(settings.model_copy(update={"triton_url": birefnet_triton.grpc_url})) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as client:
            response = await client.post(
                "/v1/remove-background",
                json={"image": data_url(encode_image(image, "png")), "channels": "alpha"},
                headers={"Authorization": f"Bearer {key}"},
            )
    assert response.status_code == 200, response.text
    assert response.headers["x-engines"] == "matting=keyed-birefnet+refine"
    alpha = np.asarray(Image.open(io.BytesIO(response.content)))
    assert alpha.shape == image.shape[:2]
    assert ((alpha >= 128) == disc).mean() > 0.99
