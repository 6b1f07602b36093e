"""Prometheus metrics, on a registry owned by one app (no global state, so tests can build many apps)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    request_latency: Histogram
    credits_charged: Counter
    triton_latency: Histogram

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
        )
