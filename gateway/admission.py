"""Admission control, before any credit is held: a per-account rate limit, then a bounded number of pipeline calls
in flight per gateway process with a bounded FIFO queue in front of it.

Synchronous requests past the queue, or waiting longer than its timeout, are refused with `Overloaded` (503 with a
Retry-After estimated from how long slots are held). Prediction workers wait for a slot without bound and outside
that queue: the queue of predictions is the database.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import Counter

from gateway.errors import Overloaded, RateLimited
from gateway.metrics import Metrics
from gateway.settings import Settings

MAX_RETRY_AFTER_S = 60
HOLD_TIME_SMOOTHING = 0.2
"""Weight of the latest slot hold time in the running mean that Retry-After is estimated from."""
IDLE_POLL_S = 0.05


class Admission:
    """Slots for pipeline calls: `max_inflight` at once, handed over in arrival order (a freed slot goes straight to
    the oldest waiter, so a newcomer cannot overtake the queue)."""

    def __init__(self, *, max_inflight: int, max_queued: int, queue_timeout_s: float, metrics: Metrics) -> None:
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self._metrics = metrics
        self._inflight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._queued_requests = 0
        self._mean_hold_s = 1.0

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> Admission:
        return cls(
            max_inflight=settings.max_inflight,
            max_queued=settings.max_queued,
            queue_timeout_s=settings.queue_timeout_s,
            metrics=metrics,
        )

    @asynccontextmanager
    async def request_slot(self) -> AsyncIterator[None]:
        """A slot for a synchronous request: free now, after a wait in the queue, or `Overloaded`."""
        if self._must_wait() and self._queued_requests >= self.max_queued:
            raise self._rejection("queue_full", "the server is at capacity and its queue is full")
        self._queued_requests += 1
        try:
            await self._acquire(self.queue_timeout_s)
        except TimeoutError:
            raise self._rejection("queue_timeout", "the server stayed at capacity while this request waited") from None
        finally:
            self._queued_requests -= 1
        async with self._held():
            yield

    @asynccontextmanager
    async def worker_slot(self) -> AsyncIterator[None]:
        """A slot for a prediction worker, however long it takes."""
        await self._acquire(None)
        async with self._held():
            yield

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no slot is held; whether that happened within `timeout_s`. A slot is let go only after the
        credit hold taken inside it is settled (gateway.credits.charge), so idle means no hold of ours is open."""
        deadline = time.monotonic() + timeout_s
        while self._inflight > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(IDLE_POLL_S)
        return True

    def _must_wait(self) -> bool:
        return self._inflight >= self.max_inflight or bool(self._waiters)

    async def _acquire(self, timeout_s: float | None) -> None:
        if not self._must_wait():
            self._inflight += 1
            self._update_gauges()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._update_gauges()
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over just as the wait ended: pass it on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            self._update_gauges()

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self._mean_hold_s += HOLD_TIME_SMOOTHING * (time.monotonic() - started - self._mean_hold_s)
            self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in-flight count unchanged
                self._update_gauges()
                return
        self._inflight -= 1
        self._update_gauges()

    def _update_gauges(self) -> None:
        self._metrics.inflight.set(self._inflight)
        self._metrics.queued.set(len(self._waiters))

    def _rejection(self, reason: str, what: str) -> Overloaded:
        self._metrics.rejections.labels(reason).inc()
        retry_after_s = self.retry_after_s()
        return Overloaded(f"{what}; nothing was charged, retry in {retry_after_s} s", retry_after_s)

    def retry_after_s(self) -> int:
        """When a slot is likely to be free for one more request: the queue ahead of it, drained at the observed
        pace, between 1 and MAX_RETRY_AFTER_S seconds."""
        drain_s = self._mean_hold_s * (self._queued_requests + 1) / self.max_inflight
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(drain_s)))


class RateLimiter:
    """A token bucket per account: `burst` requests at once, refilled at `per_minute` a minute. Per process: with N
    replicas behind a balancer an account gets about N times the rate."""

    def __init__(
        self, *, per_minute: int, burst: int, rejections: Counter, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_s = per_minute / 60
        self._burst = float(burst)
        self._rejections = rejections
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        """account id -> (tokens, when they were counted)"""

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> RateLimiter:
        return cls(
            per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst, rejections=metrics.rejections
        )

    def check(self, account_id: int) -> None:
        """Count one request of the account, or raise `RateLimited` (the request does not count then)."""
        if self._per_s == 0:
            return
        now = self._clock()
        tokens, counted_at = self._buckets.get(account_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - counted_at) * self._per_s)
        if tokens < 1:
            self._buckets[account_id] = (tokens, now)
            self._rejections.labels("rate_limited").inc()
            retry_after_s = math.ceil((1 - tokens) / self._per_s)
            raise RateLimited(f"too many requests for this key; retry in {retry_after_s} s", retry_after_s)
        self._buckets[account_id] = (tokens - 1, now)
