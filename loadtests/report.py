"""The load test's numbers, from the request records, the credit journal, Triton's statistics and the resource
samples. Pure functions: they are tested without servers.

Latency percentiles are over successful requests (what a client waited for a result; a fast refusal would flatter
them), interpolated linearly between ranks (numpy's default). Throughput counts every request, failed or not.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from loadtests.records import PREDICTION_NAME, RUN_NAME, UNRESOLVED, RequestRecord, ResourceSample

SYNC_IMAGE_NAMES = ("/v1/image/replace-background", "/v1/remove-background", "ReplaceBackground", "RemoveBackground")
"""Endpoints that return a processed image in the same call: the timeline's and the steps' latencies."""
MIB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None without values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def is_sync_image(record: RequestRecord) -> bool:
    return record.type != "ASYNC" and record.name.startswith(SYNC_IMAGE_NAMES)


@dataclass(frozen=True)
class LatencyStats:
    count: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, records: Sequence[RequestRecord], duration_s: float) -> LatencyStats:
        ok_ms = [record.ms for record in records if record.is_ok]
        return cls(
            count=len(records),
            failures=len(records) - len(ok_ms),
            rps=len(records) / duration_s if duration_s > 0 else 0.0,
            p50_ms=percentile(ok_ms, 50),
            p95_ms=percentile(ok_ms, 95),
            p99_ms=percentile(ok_ms, 99),
            mean_ms=float(np.mean(ok_ms)) if ok_ms else None,
            max_ms=max(ok_ms, default=None),
        )


def endpoint_stats(records: Sequence[RequestRecord], duration_s: float) -> dict[str, LatencyStats]:
    """Per endpoint (`<type> <name>`), sorted by name, then `Aggregated` over every request except the ASYNC
    summaries (a prediction is already counted as its submission and polls)."""
    by_endpoint: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in records:
        by_endpoint[record.endpoint].append(record)
    stats = {name: LatencyStats.of(group, duration_s) for name, group in sorted(by_endpoint.items())}
    stats["Aggregated"] = LatencyStats.of([r for r in records if r.type != "ASYNC"], duration_s)
    return stats


def error_counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    """`<endpoint>: <error label>` -> count, most frequent first."""
    counts = Counter(f"{record.endpoint}: {record.error}" for record in records if not record.is_ok)
    return dict(counts.most_common())


@dataclass(frozen=True)
class TimeBin:
    """Requests that finished in [t_s, t_s + bin_s) after the start; latencies of synchronous image requests."""

    t_s: float
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def timeline(records: Sequence[RequestRecord], t0: float, duration_s: float, bin_s: float = 5.0) -> list[TimeBin]:
    """Bins of bin_s from t0 over duration_s (the last one may be shorter); a request falls in the bin where it
    finished, the very last one included."""
    count = max(1, math.ceil(duration_s / bin_s))
    binned: list[list[RequestRecord]] = [[] for _ in range(count)]
    for record in records:
        if record.type != "ASYNC" and record.end >= t0:
            binned[min(int((record.end - t0) // bin_s), count - 1)].append(record)
    bins = []
    for index, inside in enumerate(binned):
        width_s = min(bin_s, duration_s - index * bin_s) if duration_s > index * bin_s else bin_s
        ok_ms = [record.ms for record in inside if record.is_ok and is_sync_image(record)]
        bins.append(
            TimeBin(
                t_s=index * bin_s,
                users=max((record.users for record in inside), default=0),
                rps=len(inside) / width_s,
                failures_per_s=sum(not record.is_ok for record in inside) / width_s,
                p50_ms=percentile(ok_ms, 50),
                p95_ms=percentile(ok_ms, 95),
                p99_ms=percentile(ok_ms, 99),
            )
        )
    return bins


@dataclass(frozen=True)
class StepStats:
    """Requests finished while `users` users ran: throughput over that span, and the synchronous image requests'
    latency, failures and completed outputs per second."""

    users: int
    duration_s: float
    rps: float
    error_rate: float
    image_ok_per_s: float
    image_p50_ms: float | None
    image_p95_ms: float | None


def step_stats(records: Sequence[RequestRecord], until: float = math.inf) -> list[StepStats]:
    """Requests that finished by `until` (epoch s; the end of the run time): while users stop, the user count
    falls and would misattribute the requests that finish then."""
    by_users: dict[int, list[RequestRecord]] = defaultdict(list)
    for record in records:
        if record.type != "ASYNC" and record.end <= until:
            by_users[record.users].append(record)
    steps = []
    for users, group in sorted(by_users.items()):
        span_s = max(record.end for record in group) - min(record.end for record in group)
        duration_s = max(span_s, 1.0)  # a step seen in a single instant still spans at least a second
        images_ok = [record.ms for record in group if record.is_ok and is_sync_image(record)]
        steps.append(
            StepStats(
                users=users,
                duration_s=round(span_s, 1),
                rps=len(group) / duration_s,
                error_rate=sum(not record.is_ok for record in group) / len(group),
                image_ok_per_s=len(images_ok) / duration_s,
                image_p50_ms=percentile(images_ok, 50),
                image_p95_ms=percentile(images_ok, 95),
            )
        )
    return steps


def unfinished_predictions(records: Iterable[RequestRecord]) -> list[str]:
    """Ids of predictions submitted but not seen to finish (the client stopped polling, or was stopped)."""
    submitted: list[str] = []
    finished: set[str] = set()
    for record in records:
        if record.name == RUN_NAME and record.is_ok and record.prediction_id:
            submitted.append(record.prediction_id)
        elif record.name == PREDICTION_NAME and record.error != UNRESOLVED and record.prediction_id:
            finished.add(record.prediction_id)
    return [prediction_id for prediction_id in submitted if prediction_id not in finished]


@dataclass(frozen=True)
class CreditCheck:
    """expected: successful outputs x price; charged: captures in the journal; open_holds: holds never settled.
    by_operation: operation -> {outputs, price, expected, charged}. late_outputs: outputs of predictions that
    finished after the load stopped (counted in expected)."""

    expected: int
    charged: int
    open_holds: int
    by_operation: dict[str, dict[str, int]]
    late_outputs: dict[str, int] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return self.expected == self.charged and self.open_holds == 0


def reconcile_credits(
    records: Iterable[RequestRecord],
    prices: Mapping[str, int],
    captured: Mapping[str, int],
    open_holds: int,
    late_outputs: Mapping[str, int] | None = None,
) -> CreditCheck:
    """Compare what clients received (outputs per operation, times its price) with what the journal captured."""
    late = dict(late_outputs or {})
    outputs: Counter[str] = Counter(late)
    for record in records:
        if record.is_ok and record.operation:
            outputs[record.operation] += record.outputs
    by_operation = {}
    for operation in sorted(set(outputs) | set(captured)):
        price = prices[operation]
        by_operation[operation] = {
            "outputs": outputs[operation],
            "price": price,
            "expected": outputs[operation] * price,
            "charged": captured.get(operation, 0),
        }
    return CreditCheck(
        expected=sum(row["expected"] for row in by_operation.values()),
        charged=sum(captured.values()),
        open_holds=open_holds,
        by_operation=by_operation,
        late_outputs=late,
    )


@dataclass(frozen=True)
class ModelCounters:
    """Cumulative counters of one Triton model: inferences (batch items), executions (model runs), successful
    requests, and the time those requests spent queued and computing (ns, summed over requests)."""

    inferences: int
    executions: int
    requests: int
    queue_ns: int
    compute_ns: int


def model_counters(statistics: Mapping[str, Any]) -> dict[str, ModelCounters]:
    """From tritonclient's get_inference_statistics(as_json=True) (int64 fields arrive as strings)."""
    counters = {}
    for stats in statistics.get("model_stats", ()):
        inference = stats.get("inference_stats", {})
        counters[stats["name"]] = ModelCounters(
            inferences=int(stats.get("inference_count", 0)),
            executions=int(stats.get("execution_count", 0)),
            requests=int(inference.get("success", {}).get("count", 0)),
            queue_ns=int(inference.get("queue", {}).get("ns", 0)),
            compute_ns=int(inference.get("compute_infer", {}).get("ns", 0)),
        )
    return counters


@dataclass(frozen=True)
class BatchStats:
    inferences: int
    executions: int
    mean_batch: float
    mean_queue_ms: float
    mean_compute_ms: float


def batch_stats(before: Mapping[str, ModelCounters], after: Mapping[str, ModelCounters]) -> dict[str, BatchStats]:
    """What each model did between two readings; models that did not run are left out."""
    stats = {}
    for name, end in sorted(after.items()):
        start = before.get(name, ModelCounters(0, 0, 0, 0, 0))
        executions = end.executions - start.executions
        if executions <= 0:
            continue
        requests = max(end.requests - start.requests, 1)
        stats[name] = BatchStats(
            inferences=end.inferences - start.inferences,
            executions=executions,
            mean_batch=(end.inferences - start.inferences) / executions,
            mean_queue_ms=(end.queue_ns - start.queue_ns) / requests / 1e6,
            mean_compute_ms=(end.compute_ns - start.compute_ns) / requests / 1e6,
        )
    return stats


@dataclass(frozen=True)
class ResourceSummary:
    """CPU in percent of one core (mean and max over the load); RSS in MiB after warm-up, at the end, at the peak."""

    cpu_mean_percent: float
    cpu_max_percent: float
    rss_warm_mib: float
    rss_end_mib: float
    rss_peak_mib: float


def summarize_resources(samples: Sequence[ResourceSample], t0: float, t_end: float) -> dict[str, ResourceSummary]:
    """CPU over the samples taken between t0 and t_end (the load); `after warm-up` is the last sample before t0."""
    during = [sample for sample in samples if t0 <= sample.t <= t_end]
    if not during:
        return {}
    warm = next((sample for sample in reversed(samples) if sample.t < t0), during[0])
    summaries = {}
    for group in during[0].rss_bytes:
        cpu = [sample.cpu_percent.get(group, 0.0) for sample in during]
        rss = [sample.rss_bytes.get(group, 0) for sample in during]
        summaries[group] = ResourceSummary(
            cpu_mean_percent=round(float(np.mean(cpu)), 1),
            cpu_max_percent=round(max(cpu), 1),
            rss_warm_mib=round(warm.rss_bytes.get(group, 0) / MIB, 1),
            rss_end_mib=round(rss[-1] / MIB, 1),
            rss_peak_mib=round(max(rss) / MIB, 1),
        )
    return summaries


@dataclass(frozen=True)
class LoadReport:
    """Everything one run measured. run: how it was run (command, machine, load parameters); t0: epoch s of the
    first request, where the timeline starts."""

    run: dict[str, Any]
    t0: float
    endpoints: dict[str, LatencyStats]
    errors: dict[str, int]
    steps: list[StepStats]
    timeline: list[TimeBin]
    credits: CreditCheck
    triton: dict[str, BatchStats]
    resources: dict[str, ResourceSummary]
    resource_samples: list[ResourceSample]

    @property
    def totals(self) -> LatencyStats:
        return self.endpoints["Aggregated"]

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["credits"]["matches"] = self.credits.matches
        document["totals"] = {
            "requests": self.totals.count,
            "failures": self.totals.failures,
            "error_rate": self.totals.failures / self.totals.count if self.totals.count else 0.0,
            "rps": self.totals.rps,
        }
        return document
