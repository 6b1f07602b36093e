"""Asynchronous predictions (`POST /v1/run`): rows in the database, worked on by every gateway replica.

Submission validates the input, checks the account's rate limit, holds the credits and inserts the row in one
transaction. Workers claim a row (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers) and
own it while their lease is fresh, renewing it as they go, also while they wait for an in-flight slot
(`gateway.admission`, shared with synchronous requests). A worker that dies leaves its lease to expire and another
worker (or the restarted one) takes the job over. A job that meets a passing failure (Triton or storage
unavailable, a timeout) is left the same way, its lease set to lapse after a back-off, for at most `MAX_ATTEMPTS`
runs. The hold is settled exactly once, in the transaction that ends the job, and only by the lease's current
owner; the unique settlement index makes a second capture impossible anyway.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.credits import Hold, capture_hold, hold_credits, release_hold
from gateway.db import UNFINISHED_PREDICTION_STATUSES, Prediction, as_utc, utcnow
from gateway.deps import Services, first_of
from gateway.errors import DatabaseUnavailable, NotFound, Timeout
from gateway.images import InputImage
from gateway.operations import call_pipeline, data_urls, limits_for_pipeline
from gateway.schemas import RunRequest
from replate.errors import InvalidRequest, ReplateError, Unavailable
from replate.pipeline import RemoveOptions, ReplaceOptions

log = logging.getLogger("replate.predictions")
RETRYABLE = (Unavailable, Timeout)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    """What a prediction runs: the Triton model, its PARAMS (with `output_format`) and its price."""

    model: str
    params: dict[str, Any]
    credits: int
    return_base64: bool


def job_for(body: RunRequest, services: Services) -> Job:
    """The job a /v1/run (or SubmitPrediction) request describes; refuses what the model does not take."""
    limits = limits_for_pipeline(services)
    if body.model == "background-change":
        if not body.prompt:
            raise InvalidRequest("prompt: required for model background-change")
        options = ReplaceOptions(scene_prompt=body.prompt, seed=body.seed, output_format=body.output_format, **limits)
        params = asdict(options)
        price = services.settings.price_replace_background
        model = "replace_background"
    else:
        if body.prompt:
            raise InvalidRequest("prompt: model remove-background takes no prompt")
        if body.output_format != "png":
            raise InvalidRequest("output_format: a cutout keeps its transparency only as png")
        params = asdict(RemoveOptions(**limits))
        price = services.settings.price_remove_background
        model = "remove_background"
    return Job(model=model, params=params, credits=price, return_base64=body.return_base64)


async def submit(services: Services, account_id: int, job: Job, image: InputImage, request_id: str) -> Prediction:
    services.rate_limiter.check(account_id)
    prediction_id = secrets.token_hex(16)
    async with services.sessions.begin() as session:
        hold = await session.run_sync(
            hold_credits, account_id, job.credits, operation=job.model, request_id=prediction_id
        )
        prediction = Prediction(
            id=prediction_id,
            account_id=account_id,
            model=job.model,
            status="starting",
            params=job.params,
            input_image=image.data,
            return_base64=job.return_base64,
            hold_id=hold.id,
            credits=job.credits,
        )
        session.add(prediction)
    services.work_available.set()
    log.info("prediction %s submitted (request %s)", prediction_id, request_id)
    return prediction


async def fetch_for_client(services: Services, account_id: int, prediction_id: str) -> tuple[Prediction, bool]:
    """The prediction as its owner sees it, and whether this read is the first to report its success (the one that
    carries the charge). Base64 outputs are handed over once and then forgotten."""
    async with services.sessions.begin() as session:
        prediction = await _owned(session, account_id, prediction_id)
        first_success_report = prediction.status == "succeeded" and not prediction.charge_reported
        snapshot = _detached_copy(prediction)
        if first_success_report:
            prediction.charge_reported = True
        if prediction.status == "succeeded" and prediction.return_base64 and prediction.output:
            prediction.output = None
    return snapshot, first_success_report


async def cancel(services: Services, account_id: int, prediction_id: str) -> Prediction:
    """Cancel a job that has not finished; its hold is released now (a running one's result is then discarded)."""
    async with services.sessions.begin() as session:
        prediction = await _owned(session, account_id, prediction_id, lock=True)
        if prediction.status in UNFINISHED_PREDICTION_STATUSES:
            await session.run_sync(release_hold, _hold_of(prediction))
            prediction.status = "canceled"
            prediction.completed_at = utcnow()
            prediction.input_image = None
        return _detached_copy(prediction)


class PredictionWorker:
    """One claim-run-settle loop; a gateway runs `settings.prediction_workers` of them."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.name = f"worker-{secrets.token_hex(6)}"
        self.lease = timedelta(seconds=services.settings.prediction_lease_s)

    async def run_forever(self) -> None:
        """Claim and work until the gateway stops; cancelled (gateway.app.begin_shutdown) with a job in hand, the
        job goes back to the queue."""
        services = self.services
        while not services.stopping.is_set():
            try:
                claimed = await self._claim()
                if claimed is not None:
                    await self._work_on(claimed)
                    continue
            except Exception:  # a database outage must not kill the worker: its lease expires, the job is retried
                log.exception("%s failed to claim or settle a job", self.name)
            services.work_available.clear()
            await first_of(services.work_available, services.stopping, timeout_s=self.lease.total_seconds() / 3)

    async def _claim(self) -> Prediction | None:
        now = utcnow()
        async with self.services.sessions.begin() as session:
            query = (
                select(Prediction)
                .where(
                    or_(
                        Prediction.status == "starting",
                        and_(Prediction.status == "processing", Prediction.lease_expires_at < now),
                    )
                )
                .order_by(Prediction.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            prediction = (await session.execute(query)).scalar_one_or_none()
            if prediction is None:
                return None
            prediction.status = "processing"
            prediction.worker = self.name
            prediction.lease_expires_at = now + self.lease
            prediction.attempts += 1
            prediction.started_at = prediction.started_at or now
            log.info("prediction %s claimed by %s (attempt %d)", prediction.id, self.name, prediction.attempts)
            return _detached_copy(prediction)

    async def _work_on(self, prediction: Prediction) -> None:
        heartbeat = asyncio.create_task(self._renew_lease(prediction.id))
        try:
            # The Triton call takes an in-flight slot like a synchronous request, waiting as long as it takes (the
            # lease is renewed meanwhile); a worker holds at most one claimed job while it waits.
            async with self.services.admission.worker_slot():
                outcome = await self._run(prediction)
        except asyncio.CancelledError:
            await _uncancellable(self._hand_back(prediction.id))
            raise
        finally:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat
        await _uncancellable(self._finish(prediction, outcome))  # a result in hand is settled, even when stopping

    async def _hand_back(self, prediction_id: str) -> None:
        """Put a job this worker was stopped in the middle of back in the queue, uncounted, for any worker to take
        now rather than when the lease expires. Its hold stays: it is still to be settled once."""
        try:
            async with self.services.sessions.begin() as session:
                prediction = await session.get(Prediction, prediction_id, with_for_update=True)
                if prediction is None or prediction.status != "processing" or prediction.worker != self.name:
                    return
                prediction.status = "starting"
                prediction.worker = None
                prediction.lease_expires_at = None
                prediction.attempts -= 1
        except Exception:  # the lease then expires as if this gateway had died
            log.exception("prediction %s could not be handed back; it is retried when its lease expires", prediction_id)
            return
        log.info("prediction %s handed back to the queue: this gateway is stopping", prediction_id)

    async def _run(self, prediction: Prediction) -> list[str] | ReplateError:
        assert prediction.input_image is not None
        fmt = str(prediction.params["output_format"])
        try:
            output = await call_pipeline(self.services, prediction.model, prediction.input_image, prediction.params)
            if prediction.return_base64:
                return data_urls(output.images, fmt)
            return [await self.services.storage.save(data, fmt) for data in output.images]
        except ReplateError as error:
            return error
        except Exception as exc:  # never leave a job unsettled because of an unexpected error
            log.exception("prediction %s failed unexpectedly", prediction.id)
            return ReplateError(f"unexpected failure: {type(exc).__name__}")

    async def _finish(self, claimed: Prediction, outcome: list[str] | ReplateError) -> None:
        async with self.services.sessions.begin() as session:
            prediction = await session.get(Prediction, claimed.id, with_for_update=True)
            if prediction is None or prediction.status != "processing" or prediction.worker != self.name:
                log.warning("prediction %s: lease lost or canceled; result discarded", claimed.id)
                return
            if isinstance(outcome, RETRYABLE) and prediction.attempts < MAX_ATTEMPTS:
                # Back in the queue as a lapsed lease: any worker claims it once the back-off is over; the hold stays.
                delay_s = self.services.settings.prediction_retry_backoff_s * 4 ** (prediction.attempts - 1)
                prediction.worker = None
                prediction.lease_expires_at = utcnow() + timedelta(seconds=delay_s)
                asyncio.get_running_loop().call_later(delay_s, self.services.work_available.set)
                log.info("prediction %s: %s; retried in %.1f s", claimed.id, outcome.code, delay_s)
                return
            prediction.completed_at = utcnow()
            prediction.input_image = None
            if isinstance(outcome, ReplateError):
                await session.run_sync(release_hold, _hold_of(prediction))
                prediction.status = "failed"
                prediction.error = {"code": outcome.code, "message": _client_message(outcome)}
            else:
                await session.run_sync(capture_hold, _hold_of(prediction))
                prediction.status = "succeeded"
                prediction.output = outcome
        if isinstance(outcome, list):
            self.services.metrics.credits_charged.labels(claimed.model).inc(claimed.credits)

    async def _renew_lease(self, prediction_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.services.sessions.begin() as session:
                    prediction = await session.get(Prediction, prediction_id, with_for_update=True)
                    if prediction is None or prediction.worker != self.name or prediction.status != "processing":
                        return
                    prediction.lease_expires_at = utcnow() + self.lease
            except DatabaseUnavailable:  # try again at the next beat; two missed beats lose the lease
                log.warning("prediction %s: lease not renewed, the database is unavailable", prediction_id)


async def _owned(session: AsyncSession, account_id: int, prediction_id: str, *, lock: bool = False) -> Prediction:
    query = select(Prediction).where(Prediction.id == prediction_id, Prediction.account_id == account_id)
    prediction = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if prediction is None:
        raise NotFound(f"no prediction {prediction_id!r} for this account")
    return prediction


async def _uncancellable(step: Coroutine[Any, Any, None]) -> None:
    """Run `step` to its end even if the task is cancelled meanwhile; the cancellation is raised afterwards."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _hold_of(prediction: Prediction) -> Hold:
    return Hold(id=prediction.hold_id, account_id=prediction.account_id, amount=prediction.credits)


def _detached_copy(prediction: Prediction) -> Prediction:
    """A plain copy to use after the session closes (the row object belongs to its session)."""
    columns = {column.key: getattr(prediction, column.key) for column in Prediction.__table__.columns}
    return Prediction(**columns)


def _client_message(error: ReplateError) -> str:
    if error.code == "internal":
        return "the server failed to process this prediction"
    return error.message


def predict_time_s(prediction: Prediction) -> float | None:
    if prediction.started_at is None or prediction.completed_at is None:
        return None
    return (as_utc(prediction.completed_at) - as_utc(prediction.started_at)).total_seconds()
