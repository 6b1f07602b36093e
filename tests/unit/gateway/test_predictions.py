"""Asynchronous predictions on SQLite and PostgreSQL: lifecycle, charging once, visibility, cancel, recovery."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta

import httpx

from gateway.app import create_app
from gateway.credits import release_stale_holds
from gateway.db import CreditEntry, Prediction, create_engine, create_sessionmaker, utcnow
from gateway.predictions import MAX_ATTEMPTS
from gateway.settings import Settings
from replate.errors import SubjectNotFound, Unavailable
from tests.conftest import data_url
from tests.fakes import InProcessPipelines
from tests.unit.gateway.conftest import auth, running_client, stub_resolver


async def poll(client: httpx.AsyncClient, key: str, prediction_id: str, timeout_s: float = 20) -> list[httpx.Response]:
    """Every poll until the prediction ends."""
    polls = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        response = await client.get(f"/v1/predictions/{prediction_id}", headers=auth(key))
        assert response.status_code == 200, response.text
        polls.append(response)
        if response.json()["status"] in ("succeeded", "failed", "canceled"):
            return polls
        await asyncio.sleep(0.05)
    raise AssertionError(f"prediction {prediction_id} did not finish: {polls[-1].json()}")


def run_body(studio_png: bytes, **changes: object) -> dict[str, object]:
    return {"model": "background-change", "image": data_url(studio_png), "prompt": "warm studio", **changes}


async def test_a_prediction_runs_and_is_charged_once_on_the_first_success_report(
    db_client, db_make_key, studio_png
) -> None:
    key = await db_make_key(20)
    created = await db_client.post("/v1/run", json=run_body(studio_png), headers=auth(key))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "starting" and created.headers["x-remaining-credits"] == "15"
    polls = await poll(db_client, key, created.json()["id"])
    final = polls[-1].json()
    assert final["status"] == "succeeded" and final["credits_charged"] == 5
    assert polls[-1].headers["x-credits-charged"] == "5"
    assert final["output"][0].startswith("http://replate.test/v1/outputs/")
    assert final["metrics"]["predict_time"] > 0
    moments = [datetime.fromisoformat(final[name]) for name in ("created_at", "started_at", "completed_at")]
    assert all(moment.utcoffset() == timedelta(0) for moment in moments)  # RFC 3339, as documented: with an offset
    again = await db_client.get(f"/v1/predictions/{final['id']}", headers=auth(key))
    assert "x-credits-charged" not in again.headers and again.json()["output"] == final["output"]
    assert (await db_client.get(final["output"][0])).status_code == 200
    credits = (await db_client.get("/v1/credits", headers=auth(key))).json()
    assert credits == {"balance": 15, "held": 0, "available": 15}


async def test_base64_output_is_handed_over_once(db_client, db_make_key, studio_png, db_settings) -> None:
    key = await db_make_key(20)
    body = {"model": "remove-background", "image": data_url(studio_png), "return_base64": True}
    created = await db_client.post("/v1/run", json=body, headers=auth(key))
    final = (await poll(db_client, key, created.json()["id"]))[-1].json()
    assert final["status"] == "succeeded" and final["output"][0].startswith("data:image/png;base64,")
    later = (await db_client.get(f"/v1/predictions/{final['id']}", headers=auth(key))).json()
    assert later["status"] == "succeeded" and later["output"] is None
    assert not any(db_settings.outputs_dir.iterdir())


async def test_predictions_are_visible_only_to_their_account(db_client, db_make_key, studio_png) -> None:
    """Another account's prediction is answered exactly as one that never existed: 404, not 403."""
    owner, stranger = await db_make_key(20), await db_make_key(20)
    prediction_id = (await db_client.post("/v1/run", json=run_body(studio_png), headers=auth(owner))).json()["id"]
    never_made = "0" * len(prediction_id)
    for suffix, method in (("", db_client.get), ("/cancel", db_client.post)):
        response = await method(f"/v1/predictions/{prediction_id}{suffix}", headers=auth(stranger))
        absent = await method(f"/v1/predictions/{never_made}{suffix}", headers=auth(stranger))
        assert response.status_code == absent.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert response.text.replace(prediction_id, never_made) == absent.text
    final = (await poll(db_client, owner, prediction_id))[-1].json()
    assert final["status"] == "succeeded" and final["credits_charged"] == 5  # the stranger's cancel changed nothing


async def test_a_failed_prediction_costs_nothing(db_client, db_make_key, studio_png, pipelines) -> None:
    pipelines.fail_with = SubjectNotFound("no subject separates from the backdrop")
    key = await db_make_key(20)
    created = await db_client.post("/v1/run", json=run_body(studio_png), headers=auth(key))
    final = (await poll(db_client, key, created.json()["id"]))[-1]
    assert final.json()["status"] == "failed" and final.json()["credits_charged"] == 0
    assert final.json()["error"] == {"code": "subject_not_found", "message": "no subject separates from the backdrop"}
    assert "x-credits-charged" not in final.headers and final.headers["x-remaining-credits"] == "20"


async def test_cancel_releases_the_hold(db_settings, db_make_key, studio_png) -> None:
    key = await db_make_key(20)
    app = create_app(db_settings.model_copy(update={"prediction_workers": 0}), pipelines=InProcessPipelines())
    async with running_client(app) as client:
        created = await client.post("/v1/run", json=run_body(studio_png), headers=auth(key))
        assert created.headers["x-remaining-credits"] == "15"
        canceled = await client.post(f"/v1/predictions/{created.json()['id']}/cancel", headers=auth(key))
        assert canceled.json()["status"] == "canceled" and canceled.headers["x-remaining-credits"] == "20"


async def test_invalid_runs_are_refused_before_any_hold(db_client, db_make_key, studio_png) -> None:
    key = await db_make_key(20)
    cases = [
        ({"prompt": None}, "prompt"),
        ({"model": "remove-background"}, "prompt"),
        ({"seed": 2**32}, "seed"),
        ({"model": "upscale"}, "model"),
    ]
    for changes, field in cases:
        response = await db_client.post("/v1/run", json=run_body(studio_png, **changes), headers=auth(key))
        assert response.status_code == 422 and field in response.json()["error"]["message"], response.text
        assert response.headers["x-remaining-credits"] == "20"
    short = await db_client.post("/v1/run", json=run_body(studio_png), headers=auth(await db_make_key(4)))
    assert short.status_code == 406


async def test_a_dead_workers_job_is_taken_over_and_charged_once(
    db_settings: Settings, db_make_key, studio_png
) -> None:
    """A job left `processing` by a gateway that died (lease expired, hold unsettled) ends exactly once."""
    key = await db_make_key(20)
    engine = create_engine(db_settings.database_url)
    sessions = create_sessionmaker(engine)
    app = create_app(db_settings.model_copy(update={"prediction_workers": 0}), pipelines=InProcessPipelines())
    async with running_client(app) as client:
        created = await client.post("/v1/run", json=run_body(studio_png), headers=auth(key))
    prediction_id = created.json()["id"]
    async with sessions.begin() as session:
        prediction = await session.get(Prediction, prediction_id)
        prediction.status, prediction.worker, prediction.attempts = "processing", "worker-dead", 1
        prediction.lease_expires_at = utcnow() - timedelta(seconds=1)
    pipelines = InProcessPipelines()
    app = create_app(
        db_settings.model_copy(update={"prediction_workers": 3}), pipelines=pipelines, resolver=stub_resolver
    )
    async with running_client(app) as client:
        final = (await poll(client, key, prediction_id))[-1].json()
        credits = (await client.get("/v1/credits", headers=auth(key))).json()
    assert final["status"] == "succeeded" and pipelines.calls == ["replace_background"]
    assert credits == {"balance": 15, "held": 0, "available": 15}
    async with sessions() as session:
        entries = (await session.execute(CreditEntry.__table__.select().where(CreditEntry.hold_id.is_not(None)))).all()
    assert [entry.kind for entry in entries] == ["capture"]
    await engine.dispose()


async def test_a_queued_predictions_hold_is_not_swept(db_settings: Settings, db_make_key, studio_png) -> None:
    key = await db_make_key(20)
    app = create_app(db_settings.model_copy(update={"prediction_workers": 0}), pipelines=InProcessPipelines())
    async with running_client(app) as client:
        await client.post("/v1/run", json=run_body(studio_png), headers=auth(key))
    engine = create_engine(db_settings.database_url)
    async with create_sessionmaker(engine).begin() as session:
        assert await session.run_sync(release_stale_holds, utcnow() + timedelta(days=1)) == 0
    await engine.dispose()


class FailingFirst(InProcessPipelines):
    """Raises `error` on the first `failures` calls, then runs the real pipeline."""

    def __init__(self, error: Exception, failures: int) -> None:
        super().__init__()
        self.error, self.failures = error, failures
        self.call_times: list[float] = []

    async def run(self, model: str, image: bytes, params: dict[str, object], *args: object, **kwargs: object):
        self.call_times.append(asyncio.get_running_loop().time())
        if len(self.call_times) <= self.failures:
            self.calls.append(model)
            raise self.error
        return await super().run(model, image, params, *args, **kwargs)


async def run_to_the_end(
    settings: Settings, pipelines: InProcessPipelines, backoff_s: float, key: str, studio_png: bytes
) -> tuple[dict, dict]:
    """Submit one prediction to a gateway with this retry back-off; its final view and the account's credits."""
    settings = settings.model_copy(update={"prediction_retry_backoff_s": backoff_s})
    async with running_client(create_app(settings, pipelines=pipelines, resolver=stub_resolver)) as client:
        created = await client.post("/v1/run", json=run_body(studio_png), headers=auth(key))
        final = (await poll(client, key, created.json()["id"]))[-1].json()
        credits = (await client.get("/v1/credits", headers=auth(key))).json()
    return final, credits


async def test_a_passing_failure_is_retried_after_a_back_off_and_charged_once(
    db_settings: Settings, db_make_key, studio_png
) -> None:
    key = await db_make_key(20)
    pipelines = FailingFirst(Unavailable("the inference server is restarting"), failures=2)
    final, credits = await run_to_the_end(db_settings, pipelines, 0.3, key, studio_png)
    assert final["status"] == "succeeded" and len(pipelines.call_times) == 3
    first_wait, second_wait = (b - a for a, b in itertools.pairwise(pipelines.call_times))
    assert 0.3 <= first_wait < 1.5 and 1.2 <= second_wait < 3.0  # 0.3 s, then four times that
    assert credits == {"balance": 15, "held": 0, "available": 15}


async def test_a_failure_that_outlasts_the_attempts_fails_the_job_and_costs_nothing(
    db_settings: Settings, db_make_key, studio_png
) -> None:
    key = await db_make_key(20)
    pipelines = FailingFirst(Unavailable("the inference server is down"), failures=10)
    final, credits = await run_to_the_end(db_settings, pipelines, 0.05, key, studio_png)
    assert final["status"] == "failed" and final["error"]["code"] == "unavailable"
    assert len(pipelines.call_times) == MAX_ATTEMPTS
    assert credits == {"balance": 20, "held": 0, "available": 20}
