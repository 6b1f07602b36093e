"""The Grafana dashboard shipped with the chart asks only for metrics that exist: the gateway's own registry, and
Triton's metric families."""

from __future__ import annotations

import json
import re

from prometheus_client.metrics_core import Metric

from gateway.metrics import Metrics
from tests.deploy.conftest import CHART, PRODUCTION_VALUES, Render, named

TRITON_METRICS = {
    # Per model, on every host (FACTS.md: seen on the CPU tritonserver 2.51)
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_pending_request_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    # Per GPU, on GPU hosts only (Triton's GPU metrics, --allow-gpu-metrics, on by default)
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
}
PROMQL_FUNCTIONS = {"sum", "rate", "histogram_quantile", "max", "avg"}
NOT_A_METRIC = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\bby\s*\([^)]*\)")
"""Label matchers, range selectors and `by (...)` groupings: what is left of an expression names metrics."""


def exposed_names(family: Metric) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}[family.type]
    return {family.name + suffix for suffix in suffixes}


def test_every_panel_queries_metrics_that_exist() -> None:
    gateway_metrics = set().union(*(exposed_names(family) for family in Metrics.create().registry.collect()))
    dashboard = json.loads((CHART / "dashboards" / "replate.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"[a-z_][a-z0-9_]*", NOT_A_METRIC.sub("", target["expr"]))) - PROMQL_FUNCTIONS
            assert names, target["expr"]
            queried |= names
    unknown = queried - gateway_metrics - TRITON_METRICS
    assert not unknown, f"the dashboard queries metrics nobody exposes: {sorted(unknown)}"
    assert {"replate_pipeline_calls_inflight", "nv_inference_queue_duration_us"} <= queried


def test_the_chart_ships_the_dashboard_when_asked(render: Render) -> None:
    config_map = named(render((PRODUCTION_VALUES,)), "ConfigMap", "dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["replate.json"])["uid"] == "replate-overview"
