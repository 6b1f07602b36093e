"""Money under concurrency, through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from gateway.app import create_app
from gateway.db import CreditEntry, create_engine, create_sessionmaker
from tests.conftest import data_url
from tests.fakes import InProcessPipelines
from tests.unit.gateway.conftest import auth, running_client


async def test_200_concurrent_requests_on_an_account_that_can_afford_50(db_make_key, db_settings, studio_png) -> None:
    key = await db_make_key(50)
    body = {"image": data_url(studio_png), "channels": "alpha"}
    roomy = db_settings.model_copy(update={"max_inflight": 8, "max_queued": 200})  # all admitted: money is tested
    async with running_client(create_app(roomy, pipelines=InProcessPipelines())) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/remove-background", json=body, headers=auth(key)) for _ in range(200))
        )
        credits = (await client.get("/v1/credits", headers=auth(key))).json()
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 50, 406: 150}
    assert all(int(response.headers["x-remaining-credits"]) >= 0 for response in responses)
    assert credits == {"balance": 0, "held": 0, "available": 0}

    engine = create_engine(db_settings.database_url)
    async with create_sessionmaker(engine)() as session:
        rows = await session.execute(select(CreditEntry.kind, func.sum(CreditEntry.amount)).group_by(CreditEntry.kind))
        sums = {kind: int(total) for kind, total in rows}
    await engine.dispose()
    assert sums == {"grant": 50, "hold": 50, "capture": 50}
