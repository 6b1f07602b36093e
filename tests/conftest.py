"""Shared fixtures: a migrated database, settings in a temporary data folder, API keys, encoded test images."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.admin import create_key
from gateway.migrate import upgrade_database
from gateway.settings import Settings
from replate.imageio import encode_image
from tests.synthetic import make_studio_shot

POSTGRES_URL = os.environ.get("REPLATE_TEST_POSTGRES_URL", "postgresql+asyncpg://127.0.0.1:5432/test")


def _settings_for(tmp_path: Path, database_url: str = "") -> Settings:
    settings = Settings(data_dir=tmp_path / "data", triton_url="127.0.0.1:1", database_url=database_url, grpc_port=0)
    settings.data_dir.mkdir(parents=True)
    upgrade_database(settings.database_url)
    return settings


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The local PostgreSQL with a schema of this test's own, dropped afterwards."""
    schema = f"replate_test_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        asyncio.run(execute(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on SQLite (the embedded default)."""
    return _settings_for(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on each supported database: tests using this run twice."""
    if request.param == "sqlite":
        return _settings_for(tmp_path)
    return _settings_for(tmp_path, request.getfixturevalue("postgres_url"))


def key_maker(settings: Settings):
    async def make(credits: int = 100) -> str:
        return await create_key(settings, f"account-{uuid.uuid4().hex[:8]}", credits)

    return make


@pytest.fixture
def make_key(settings: Settings):
    """make_key(credits) -> a new account's API key (SQLite)."""
    return key_maker(settings)


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
