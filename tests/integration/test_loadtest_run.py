"""`python -m loadtests.run` end to end: real Triton, the gateway, Locust with both users, for about 15 seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.run import main


@pytest.mark.slow
def test_a_short_run_writes_a_report_whose_credits_match(tmp_path: Path) -> None:
    out = tmp_path / "report"
    exit_code = main(
        ["--users", "2", "--spawn-rate", "2", "--duration", "15", "--stop-timeout", "60", "--out", str(out)]
    )

    report = json.loads((out / "report.json").read_text())
    assert exit_code == 0
    assert report["credits"]["matches"] is True
    assert report["credits"]["open_holds"] == 0
    assert report["credits"]["charged"] == report["credits"]["expected"] > 0
    assert report["totals"]["requests"] > 0 and report["totals"]["rps"] > 0
    protocols = {name.split(" ", 1)[0] for name in report["endpoints"]}
    assert {"POST", "gRPC"} <= protocols
    aggregated = report["endpoints"]["Aggregated"]
    assert {"count", "failures", "rps", "p50_ms", "p95_ms", "p99_ms"} <= set(aggregated)
    assert aggregated["p50_ms"] <= aggregated["p95_ms"] <= aggregated["p99_ms"]
    assert {"gateway", "triton", "locust"} <= set(report["resources"])
    assert report["resources"]["triton"]["rss_end_mib"] > 0
    assert report["triton"]["matting"]["executions"] > 0
    assert report["timeline"] and report["steps"]
    assert "credits match" in (out / "report.md").read_text()
    assert (out / "report.png").stat().st_size > 0
