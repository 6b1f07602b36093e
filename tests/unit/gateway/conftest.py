"""The gateway app on its HTTP interface, with the pipelines run in-process and DNS stubbed (no Triton, no
network): `client` on SQLite, `db_client` on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import key_maker
from tests.fakes import InProcessPipelines

STUB_DNS = {"images.example": ["93.184.216.34"], "intranet.example": ["10.1.2.3"]}


async def stub_resolver(host: str, port: int) -> list[str]:
    """Names the tests use; anything else must not be looked up."""
    return STUB_DNS[host]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def running_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replate.test") as client,
    ):
        yield client


@pytest.fixture
def pipelines() -> InProcessPipelines:
    return InProcessPipelines()


@pytest.fixture
async def client(settings: Settings, pipelines: InProcessPipelines) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(create_app(settings, pipelines=pipelines, resolver=stub_resolver)) as client:
        yield client


@pytest.fixture
async def db_client(db_settings: Settings, pipelines: InProcessPipelines) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(create_app(db_settings, pipelines=pipelines, resolver=stub_resolver)) as client:
        yield client


@pytest.fixture
def db_make_key(db_settings: Settings):
    """make_key for the database under `db_client`."""
    return key_maker(db_settings)
