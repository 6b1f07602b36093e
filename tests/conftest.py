"""Shared fixtures: a migrated database, settings in a temporary data folder, API keys, encoded test images."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gateway.admin import create_key
from gateway.migrate import upgrade_database
from gateway.settings import Settings
from replate.imageio import encode_image
from tests.synthetic import make_studio_shot


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", triton_url="127.0.0.1:1")
    settings.data_dir.mkdir(parents=True)
    upgrade_database(settings.database_url)
    return settings


@pytest.fixture
async def make_key(settings: Settings):
    """make_key(credits) -> a new account's API key."""
    counter = iter(range(1_000_000))

    async def make(credits: int = 100) -> str:
        return await create_key(settings, f"account-{next(counter)}", credits)

    return make


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture(scope="session")
def studio_png() -> bytes:
    """A 320x240 synthetic studio product shot, PNG."""
    rgb, _alpha = make_studio_shot(320, 240, seed=3)
    return encode_image(rgb, "png")


@pytest.fixture(scope="session")
def studio_jpeg() -> bytes:
    rgb, _alpha = make_studio_shot(320, 240, seed=4)
    return encode_image(rgb, "jpeg")
