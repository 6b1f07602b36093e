"""Prometheus metrics, on a registry owned by one app (no global state, so tests can build many apps)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.credits import unsettled_holds
from gateway.db import PREDICTION_STATUSES, CreditEntry, Prediction

LATENCY_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    request_latency: Histogram
    credits_charged: Counter
    triton_latency: Histogram
    holds_outstanding: Gauge
    credits_held: Gauge
    predictions: Gauge
    inflight: Gauge
    queued: Gauge
    rejections: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "replate_http_requests", "HTTP requests by route and status", ["route", "status"], registry=registry
            ),
            request_latency=Histogram(
                "replate_http_request_duration_seconds",
                "HTTP request latency",
                ["route"],
                buckets=LATENCY_BUCKETS_S,
                registry=registry,
            ),
            credits_charged=Counter(
                "replate_credits_charged", "Credits captured, by operation", ["operation"], registry=registry
            ),
            triton_latency=Histogram(
                "replate_triton_request_duration_seconds",
                "Triton pipeline call latency",
                ["model"],
                buckets=LATENCY_BUCKETS_S,
                registry=registry,
            ),
            holds_outstanding=Gauge(
                "replate_credit_holds_outstanding", "Credit holds not yet captured or released", registry=registry
            ),
            credits_held=Gauge("replate_credits_held", "Credits reserved by holds in flight", registry=registry),
            predictions=Gauge(
                "replate_predictions", "Predictions by status (starting = queue depth)", ["status"], registry=registry
            ),
            inflight=Gauge("replate_pipeline_calls_inflight", "Pipeline calls holding a slot", registry=registry),
            queued=Gauge(
                "replate_pipeline_calls_queued", "Requests and prediction workers waiting for a slot", registry=registry
            ),
            rejections=Counter(
                "replate_rejections",
                "Requests refused before any work: queue_full, queue_timeout, rate_limited, triton_overloaded",
                ["reason"],
                registry=registry,
            ),
        )

    async def refresh_from_database(self, session: AsyncConnection) -> None:
        """Set the gauges that describe database state (called when metrics are scraped)."""
        totals = unsettled_holds(func.count(CreditEntry.id), func.coalesce(func.sum(CreditEntry.amount), 0))
        count, held = (await session.execute(totals)).one()
        self.holds_outstanding.set(count)
        self.credits_held.set(held)
        rows = await session.execute(select(Prediction.status, func.count()).group_by(Prediction.status))
        by_status = {status: total for status, total in rows}
        for status in PREDICTION_STATUSES:
            self.predictions.labels(status).set(by_status.get(status, 0))
