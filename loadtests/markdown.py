"""The load test report as Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loadtests.report import LoadReport


def render_markdown(report: LoadReport, plot_name: str) -> str:
    sections = [
        _header(report),
        _endpoints(report),
        _steps(report),
        _errors(report),
        _credits(report),
        _triton(report),
        _resources(report),
        f"![latency, throughput and resources over time]({plot_name})\n",
    ]
    return "\n".join(sections)


def _header(report: LoadReport) -> str:
    run, machine, totals = report.run, report.run["machine"], report.totals
    error_rate = totals.failures / totals.count if totals.count else 0.0
    step = run["step"]
    load = (
        f"step load, +{step['users']} user(s) every {step['seconds']:g} s up to {run['users']}"
        if step
        else (f"{run['users']} users")
    )
    return "\n".join(
        [
            "# replate load test",
            "",
            f"- command: `{run['command']}` (started {run['started_at']}, code {run.get('code', 'unknown')})",
            f"- load: {load}, spawn rate {run['spawn_rate']:g}/s, {run['duration_s']:g} s"
            f" (requests seen over {run['measured_s']:g} s)",
            f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']:g} GiB,"
            f" {machine['platform']}, Python {machine['python']}; load average before:"
            f" {', '.join(f'{load:g}' for load in machine['load_average_before'])}",
            f"- **{totals.count} requests, {totals.rps:.2f} req/s, {totals.failures} failed ({error_rate:.1%});"
            f" credits {'match' if report.credits.matches else 'DO NOT match'}**"
            f" ({report.credits.charged} charged, {report.credits.expected} expected)",
            "",
        ]
    )


def _endpoints(report: LoadReport) -> str:
    rows = [
        [
            name,
            str(s.count),
            str(s.failures),
            f"{s.rps:.2f}",
            _ms(s.p50_ms),
            _ms(s.p95_ms),
            _ms(s.p99_ms),
            _ms(s.max_ms),
        ]
        for name, s in report.endpoints.items()
    ]
    header = ["endpoint", "requests", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    note = "Latencies of successful requests. `ASYNC` rows are whole predictions (submission to the poll that saw"
    note += " them finish), not requests, and are left out of `Aggregated`."
    return _section("Endpoints", note, header, rows)


def _steps(report: LoadReport) -> str:
    rows = [
        [
            str(s.users),
            f"{s.duration_s:g}",
            f"{s.rps:.2f}",
            f"{s.image_ok_per_s:.2f}",
            _ms(s.image_p50_ms),
            _ms(s.image_p95_ms),
            f"{s.error_rate:.1%}",
        ]
        for s in report.steps
    ]
    header = ["users", "span s", "req/s", "images ok/s", "image p50 ms", "image p95 ms", "errors"]
    note = "Requests grouped by the number of users running when they finished (those finished while users were"
    note += " stopping are left out); `image` = synchronous replace and remove calls (HTTP and gRPC)."
    return _section("By number of users", note, header, rows)


def _errors(report: LoadReport) -> str:
    rows = [[label, str(count)] for label, count in report.errors.items()]
    return _section("Errors", "" if rows else "None.", ["endpoint: error", "count"], rows)


def _credits(report: LoadReport) -> str:
    check = report.credits
    rows = [
        [operation, str(row["outputs"]), str(row["price"]), str(row["expected"]), str(row["charged"])]
        for operation, row in check.by_operation.items()
    ]
    verdict = "match exactly" if check.matches else "DO NOT match"
    note = f"Charged (captures in the credit journal) {check.charged}, expected (successful outputs x price)"
    note += f" {check.expected}: they {verdict}; holds left open: {check.open_holds}."
    if check.late_outputs:
        note += f" Predictions that finished after the load stopped: {check.late_outputs} outputs, counted."
    return _section("Credits", note, ["operation", "outputs", "price", "expected", "charged"], rows)


def _triton(report: LoadReport) -> str:
    rows = [
        [
            name,
            str(s.inferences),
            str(s.executions),
            f"{s.mean_batch:.2f}",
            f"{s.mean_queue_ms:.1f}",
            f"{s.mean_compute_ms:.1f}",
        ]
        for name, s in report.triton.items()
    ]
    header = ["model", "inferences", "executions", "mean batch", "queue ms/request", "compute ms/request"]
    return _section("Triton batching", "During the load (warm-up excluded).", header, rows)


def _resources(report: LoadReport) -> str:
    rows = [
        [
            group,
            f"{s.cpu_mean_percent:g}",
            f"{s.cpu_max_percent:g}",
            f"{s.rss_warm_mib:g}",
            f"{s.rss_end_mib:g}",
            f"{s.rss_peak_mib:g}",
        ]
        for group, s in report.resources.items()
    ]
    header = ["process group", "CPU % mean", "CPU % max", "RSS MiB after warm-up", "RSS MiB at end", "RSS MiB peak"]
    note = "Sampled every second with psutil; CPU in % of one core; a group is a process and its children"
    note += " (Triton: tritonserver and its Python backend stubs), RSS summed over them; `machine` is the whole host"
    note += " (every process, other users' included; memory in use instead of RSS)."
    return _section("Processes", note, header, rows)


def _section(title: str, note: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [f"## {title}", ""]
    if note:
        lines += [note, ""]
    rows = list(rows)
    if rows:
        lines += [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows), ""]
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
