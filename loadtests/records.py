"""What a load test records: one line per finished request (written by the locustfile) and resource samples."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RUN_NAME = "/v1/run background-change"
"""The submission of an asynchronous prediction; its record carries the prediction id."""
PREDICTION_NAME = "background-change submitted -> finished"
"""A whole asynchronous prediction (type ASYNC), from submission to the poll that saw it finish."""
UNRESOLVED = "prediction unresolved"
"""The error of a prediction the client stopped polling before it finished."""
MACHINE = "machine"
"""The resource group of the whole host (every process on it)."""


@dataclass(frozen=True)
class RequestRecord:
    """start: epoch s; ms: latency; error: a label such as `HTTP 503 overloaded`, None on success. A request that
    delivered outputs names its `operation` (`replace_background`, `remove_background`) and counts its `outputs`.
    users: the Locust user count when it finished."""

    start: float
    type: str
    name: str
    ms: float
    error: str | None
    users: int
    operation: str | None = None
    outputs: int = 0
    prediction_id: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.type} {self.name}"

    @property
    def end(self) -> float:
        return self.start + self.ms / 1000

    @property
    def is_ok(self) -> bool:
        return self.error is None


def read_records(path: Path) -> list[RequestRecord]:
    with path.open(encoding="utf-8") as lines:
        return [RequestRecord(**json.loads(line)) for line in lines if line.strip()]


@dataclass(frozen=True)
class ResourceSample:
    """At `t` (epoch s), per process group: CPU in percent of one core, resident memory in bytes."""

    t: float
    cpu_percent: dict[str, float] = field(default_factory=dict)
    rss_bytes: dict[str, int] = field(default_factory=dict)
