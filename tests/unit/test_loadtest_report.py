"""The load test report's numbers, from hand-made records: no servers, no Locust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.markdown import render_markdown
from loadtests.plot import write_plot
from loadtests.records import PREDICTION_NAME, RUN_NAME, UNRESOLVED, RequestRecord, ResourceSample, read_records
from loadtests.report import (
    LoadReport,
    ModelCounters,
    batch_stats,
    endpoint_stats,
    error_counts,
    model_counters,
    percentile,
    reconcile_credits,
    step_stats,
    summarize_resources,
    timeline,
    unfinished_predictions,
)

PRICES = {"replace_background": 5, "remove_background": 1}
T0 = 1_000_000.0


def record(name: str = "/v1/remove-background", ms: float = 100.0, **fields: object) -> RequestRecord:
    values: dict[str, object] = {"start": T0, "type": "POST", "name": name, "ms": ms, "error": None, "users": 1}
    return RequestRecord(**{**values, **fields})  # type: ignore[arg-type]


def test_percentile_interpolates_linearly_between_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 100) == 40.0
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_percentile_refuses_out_of_range_q() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_endpoint_latencies_count_only_successes_and_aggregate_leaves_out_async() -> None:
    records = [
        record(ms=100),
        record(ms=300),
        record(ms=5, error="HTTP 503 overloaded"),
        record(name=PREDICTION_NAME, type="ASYNC", ms=9000),
    ]
    stats = endpoint_stats(records, duration_s=2.0)
    remove = stats["POST /v1/remove-background"]
    assert (remove.count, remove.failures, remove.rps) == (3, 1, 1.5)
    assert (remove.p50_ms, remove.max_ms, remove.mean_ms) == (200.0, 300.0, 200.0)
    assert stats["Aggregated"].count == 3
    assert stats[f"ASYNC {PREDICTION_NAME}"].p99_ms == 9000.0


def test_error_counts_label_endpoint_and_code_most_frequent_first() -> None:
    records = [
        record(error="HTTP 503 overloaded"),
        record(name="ReplaceBackground color", type="gRPC", error="gRPC UNAVAILABLE overloaded"),
        record(error="HTTP 503 overloaded"),
        record(),
    ]
    assert error_counts(records) == {
        "POST /v1/remove-background: HTTP 503 overloaded": 2,
        "gRPC ReplaceBackground color: gRPC UNAVAILABLE overloaded": 1,
    }


def test_timeline_bins_by_completion_and_shortens_the_last_bin() -> None:
    records = [
        record(start=T0, ms=1000, users=1),  # ends at 1 s
        record(start=T0 + 3, ms=3000, users=2),  # ends at 6 s
        record(start=T0 + 6, ms=1000, users=2, error="HTTP 503 overloaded"),  # ends at 7 s, the very end
        record(name="/v1/credits", type="GET", start=T0 + 2, ms=10, users=1),
    ]
    bins = timeline(records, T0, duration_s=7.0, bin_s=5.0)
    assert [b.t_s for b in bins] == [0.0, 5.0]
    assert (bins[0].users, bins[0].rps, bins[0].p50_ms) == (1, 2 / 5, 1000.0)  # the balance check has no image
    assert (bins[1].users, bins[1].rps, bins[1].failures_per_s, bins[1].p50_ms) == (2, 1.0, 0.5, 3000.0)


def test_steps_group_by_users_with_image_latency_and_error_rate() -> None:
    records = [
        record(start=T0, ms=500, users=1),
        record(start=T0 + 10, ms=500, users=1),
        record(start=T0 + 20, ms=2000, users=4),
        record(start=T0 + 22, ms=100, users=4, error="HTTP 503 overloaded"),
    ]
    one, four = step_stats(records)
    assert (one.users, one.duration_s, one.rps, one.error_rate, one.image_p50_ms) == (1, 10.0, 0.2, 0.0, 500.0)
    assert (four.users, four.duration_s, four.error_rate, four.image_p95_ms) == (4, 0.1, 0.5, 2000.0)
    assert four.rps == 2.0  # a span under a second counts as one second
    assert [step.users for step in step_stats(records, until=T0 + 15)] == [1]


def test_credits_match_when_captures_equal_outputs_times_price() -> None:
    records = [
        record(operation="remove_background", outputs=1),
        record(name="/v1/image/replace-background color", operation="replace_background", outputs=2),
        record(name="/v1/image/replace-background color", error="HTTP 503 overloaded"),
        record(name="/v1/credits", type="GET"),
    ]
    check = reconcile_credits(
        records, PRICES, {"remove_background": 1, "replace_background": 15}, 0, {"replace_background": 1}
    )
    assert (check.expected, check.charged, check.matches) == (16, 16, True)
    assert check.by_operation["replace_background"] == {"outputs": 3, "price": 5, "expected": 15, "charged": 15}


def test_credits_do_not_match_on_an_extra_capture_or_an_open_hold() -> None:
    records = [record(operation="remove_background", outputs=1)]
    overcharged = reconcile_credits(records, PRICES, {"remove_background": 1, "replace_background": 5}, 0)
    assert (overcharged.expected, overcharged.charged, overcharged.matches) == (1, 6, False)
    assert overcharged.by_operation["replace_background"]["outputs"] == 0
    assert not reconcile_credits(records, PRICES, {"remove_background": 1}, open_holds=1).matches


def test_unfinished_predictions_are_submitted_ones_never_seen_to_finish() -> None:
    records = [
        record(name=RUN_NAME, prediction_id="a"),
        record(name=RUN_NAME, prediction_id="b"),
        record(name=RUN_NAME, prediction_id="c"),
        record(name=RUN_NAME, prediction_id="d"),
        record(name=RUN_NAME, error="HTTP 503 overloaded"),
        record(name=PREDICTION_NAME, type="ASYNC", prediction_id="a", operation="replace_background", outputs=1),
        record(name=PREDICTION_NAME, type="ASYNC", prediction_id="b", error="prediction failed"),
        record(name=PREDICTION_NAME, type="ASYNC", prediction_id="c", error=UNRESOLVED),
    ]
    assert unfinished_predictions(records) == ["c", "d"]


def test_batch_stats_are_the_difference_between_two_readings() -> None:
    statistics = {
        "model_stats": [
            {
                "name": "matting",
                "inference_count": "30",
                "execution_count": "12",
                "inference_stats": {"success": {"count": "30"}, "queue": {"ns": "600000000"}, "compute_infer": {}},
            },
            {"name": "idle", "inference_count": "4", "execution_count": "4"},
        ]
    }
    after = model_counters(statistics)
    before = {"matting": ModelCounters(10, 8, 10, 100_000_000, 0), "idle": ModelCounters(4, 4, 4, 0, 0)}
    stats = batch_stats(before, after)
    assert list(stats) == ["matting"]
    matting = stats["matting"]
    assert (matting.inferences, matting.executions, matting.mean_batch) == (20, 4, 5.0)
    assert matting.mean_queue_ms == pytest.approx(25.0)


def test_resources_average_cpu_over_the_load_and_take_rss_before_and_at_the_end() -> None:
    mib = 1024 * 1024
    samples = [
        ResourceSample(t=T0 - 1, cpu_percent={"gateway": 90.0}, rss_bytes={"gateway": 100 * mib}),
        ResourceSample(t=T0 + 1, cpu_percent={"gateway": 10.0}, rss_bytes={"gateway": 150 * mib}),
        ResourceSample(t=T0 + 2, cpu_percent={"gateway": 30.0}, rss_bytes={"gateway": 120 * mib}),
        ResourceSample(t=T0 + 9, cpu_percent={"gateway": 99.0}, rss_bytes={"gateway": 999 * mib}),
    ]
    gateway = summarize_resources(samples, T0, T0 + 5)["gateway"]
    assert (gateway.cpu_mean_percent, gateway.cpu_max_percent) == (20.0, 30.0)
    assert (gateway.rss_warm_mib, gateway.rss_end_mib, gateway.rss_peak_mib) == (100.0, 120.0, 150.0)


def test_records_round_trip_through_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        json.dumps({"start": T0, "type": "gRPC", "name": "GetBalance", "ms": 3.5, "error": None, "users": 2}) + "\n\n"
    )
    assert read_records(path) == [record(type="gRPC", name="GetBalance", ms=3.5, users=2)]


def test_a_report_renders_as_markdown_json_and_a_small_png(tmp_path: Path) -> None:
    records = [
        record(start=T0 + i, ms=400 + 10 * i, operation="remove_background", outputs=1, users=1 + i // 10)
        for i in range(30)
    ]
    samples = [ResourceSample(t=T0 + i, cpu_percent={"triton": 50.0}, rss_bytes={"triton": 2**30}) for i in range(31)]
    report = LoadReport(
        run={
            "command": "python -m loadtests.run",
            "started_at": "2026-01-01T00:00:00+00:00",
            "users": 3,
            "spawn_rate": 1.0,
            "duration_s": 30.0,
            "measured_s": 30.4,
            "step": {"users": 1, "seconds": 10.0},
            "machine": {
                "cpu": "test",
                "cores": 2,
                "memory_gib": 8,
                "platform": "linux",
                "python": "3.11",
                "load_average_before": [0.5, 0.4, 0.3],
            },
        },
        t0=T0,
        endpoints=endpoint_stats(records, 30.4),
        errors=error_counts(records),
        steps=step_stats(records),
        timeline=timeline(records, T0, 30.4),
        credits=reconcile_credits(records, PRICES, {"remove_background": 30}, 0),
        triton={},
        resources=summarize_resources(samples, T0, T0 + 30.4),
        resource_samples=samples,
    )
    markdown = render_markdown(report, "plot.png")
    assert "30 requests" in markdown and "they match exactly" in markdown and "![" in markdown
    document = json.loads(json.dumps(report.to_json()))
    assert document["credits"]["matches"] is True
    assert document["totals"]["requests"] == 30
    write_plot(report, tmp_path / "plot.png")
    assert 0 < (tmp_path / "plot.png").stat().st_size < 200_000
