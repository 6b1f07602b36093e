"""The report's figure: image latency percentiles, throughput and users, CPU and memory, over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt

from loadtests.records import MACHINE
from loadtests.report import MIB, LoadReport


def write_plot(report: LoadReport, path: Path) -> None:
    figure, (latency, throughput, cpu) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    _latency(latency, report)
    _throughput(throughput, report)
    _resources(cpu, report)
    cpu.set_xlabel("seconds since the first request")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _latency(axes: plt.Axes, report: LoadReport) -> None:
    times = [b.t_s for b in report.timeline]
    for label, values in (
        ("p50", [b.p50_ms for b in report.timeline]),
        ("p95", [b.p95_ms for b in report.timeline]),
        ("p99", [b.p99_ms for b in report.timeline]),
    ):
        axes.plot(times, [float("nan") if v is None else v for v in values], marker=".", label=label)
    axes.set_ylabel("ms")
    axes.set_title("synchronous image requests: latency (5 s bins)")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)


def _throughput(axes: plt.Axes, report: LoadReport) -> None:
    times = [b.t_s for b in report.timeline]
    axes.plot(times, [b.rps for b in report.timeline], marker=".", label="requests/s")
    axes.plot(times, [b.failures_per_s for b in report.timeline], marker=".", color="tab:red", label="failures/s")
    axes.set_ylabel("per second")
    axes.set_title("throughput (all requests) and users")
    axes.grid(alpha=0.3)
    users = axes.twinx()
    users.step(times, [b.users for b in report.timeline], where="post", color="grey", linestyle="--", label="users")
    users.set_ylabel("users")
    handles = axes.get_legend_handles_labels()[0] + users.get_legend_handles_labels()[0]
    axes.legend(handles=handles, loc="upper left")


def _resources(axes: plt.Axes, report: LoadReport) -> None:
    samples = [sample for sample in report.resource_samples if sample.t >= report.t0]  # not Locust's start-up
    if not samples:
        return
    times = [sample.t - report.t0 for sample in samples]
    memory = axes.twinx()
    for group in samples[0].cpu_percent:
        line = axes.plot(times, [s.cpu_percent.get(group, 0.0) for s in samples], label=f"{group} CPU %")[0]
        if group != MACHINE:  # the host's memory in use would flatten the processes' lines
            rss = [s.rss_bytes.get(group, 0) / MIB for s in samples]
            memory.plot(times, rss, color=line.get_color(), linestyle=":", label=f"{group} RSS")
    axes.set_ylabel("CPU % of one core")
    memory.set_ylabel("RSS MiB (dotted)")
    axes.set_title("processes")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
