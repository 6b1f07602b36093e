"""Run a bounded load test against a fresh embedded stack and write the report.

    python -m loadtests.run --users 4 --spawn-rate 1 --duration 60 --out .replate/loadtest [--step]

Starts tritonserver and the gateway (SQLite in a temporary folder, a fresh account with enough credits), warms
them up, runs Locust headless against 127.0.0.1 (loadtests/locustfile.py, plus loadtests/shape.py with --step),
waits for open credit holds to settle, then writes report.md, report.json and report.png to --out. Exit status 0
when the credits charged equal the successful outputs times their prices, 1 when they do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from loadtests.images import make_payloads
from loadtests.markdown import render_markdown
from loadtests.plot import write_plot
from loadtests.records import RequestRecord, ResourceSample, read_records
from loadtests.report import (
    LoadReport,
    batch_stats,
    endpoint_stats,
    error_counts,
    model_counters,
    reconcile_credits,
    step_stats,
    summarize_resources,
    timeline,
    unfinished_predictions,
)
from loadtests.resources import ResourceSampler
from loadtests.stack import LOAD_ACCOUNT, WARMUP_ACCOUNT, Stack

REPOSITORY = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPOSITORY / "loadtests" / "locustfile.py"
SHAPEFILE = REPOSITORY / "loadtests" / "shape.py"
SETTLE_TIMEOUT_S = 120.0
LOCUST_GRACE_S = 60.0
"""Beyond run time and stop timeout: Locust's start-up and shut-down. Past it the process is killed."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="replate-loadtest-") as tmp, Stack(Path(tmp) / "data") as stack:
        _say(f"stack ready: HTTP {stack.url}, gRPC {stack.grpc_target}; warming up")
        warm_up(stack)
        warm_up_under_load(stack, args)
        report = measure(stack, args)
    (args.out / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    write_plot(report, args.out / "report.png")
    (args.out / "report.md").write_text(render_markdown(report, "report.png"), encoding="utf-8")
    check = report.credits
    verdict = "match" if check.matches else "DO NOT match"
    _say(f"report in {args.out}: credits charged {check.charged}, expected {check.expected} ({verdict})")
    return 0 if check.matches else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=4, help="users (with --step: the last step)")
    parser.add_argument("--spawn-rate", type=float, default=1.0, help="users started per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--out", type=Path, default=Path(".replate/loadtest"), help="report folder")
    parser.add_argument("--step", action="store_true", help="step load: users grow in steps up to --users")
    parser.add_argument("--step-users", type=int, default=1, help="users added at each step")
    parser.add_argument("--step-seconds", type=float, default=15.0, help="length of each step")
    parser.add_argument("--stop-timeout", type=float, default=60.0, help="seconds users get to finish at the end")
    parser.add_argument(
        "--warmup-seconds", type=float, default=0.0, help="seconds of the same load, not measured, before the run"
    )
    return parser


def warm_up(stack: Stack) -> None:
    """One request per Triton pipeline and scene engine, on the warm-up account: first calls load models and
    caches, which is not the steady state the report is about."""
    payloads = make_payloads()
    image = payloads.shots[-1].data_url
    bodies = [
        ("/v1/image/replace-background", {"image_url": image, "bg_color": "#ffffff"}),
        ("/v1/image/replace-background", {"image_url": image, "scene_prompt": "white marble, bright studio"}),
        ("/v1/image/replace-background", {"image_url": image, "scene_image_url": payloads.scene.data_url}),
        ("/v1/remove-background", {"image": image}),
    ]
    headers = {"Authorization": f"Bearer {stack.keys[WARMUP_ACCOUNT]}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=300) as client:
        for path, body in bodies:
            client.post(path, json=body).raise_for_status()


def warm_up_under_load(stack: Stack, args: argparse.Namespace) -> None:
    """--warmup-seconds of the same load on the warm-up account, not measured: every model instance and image size
    is in use before the measured window, so the report's memory "after warm-up" is a steady state (one request per
    pipeline leaves Triton's second instances and the other sizes cold: +18 % RSS in the first 80 s)."""
    if args.warmup_seconds <= 0:
        return
    _say(f"{args.warmup_seconds:g} s of load to warm up")
    records = args.out / "warmup-records.jsonl"
    command = _locust_command(
        stack, args, records, key=stack.keys[WARMUP_ACCOUNT], duration=args.warmup_seconds, step=False
    )
    with (args.out / "warmup-locust.log").open("wb") as log:
        limit_s = args.warmup_seconds + args.stop_timeout + LOCUST_GRACE_S
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=_locust_environment(), timeout=limit_s)
    records.unlink(missing_ok=True)


def measure(stack: Stack, args: argparse.Namespace) -> LoadReport:
    records_path = args.out / "records.jsonl"
    records_path.unlink(missing_ok=True)
    counters_before = model_counters(stack.model_statistics())
    run_info = _run_info(args)
    command = _locust_command(
        stack, args, records_path, key=stack.keys[LOAD_ACCOUNT], duration=args.duration, step=args.step
    )
    with (args.out / "locust.log").open("wb") as log:
        locust = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_locust_environment())
    sampler = ResourceSampler({**stack.pids, "locust": locust.pid})
    sampler.start()
    try:
        locust.wait(args.duration + args.stop_timeout + LOCUST_GRACE_S)
    except subprocess.TimeoutExpired:
        locust.kill()
        locust.wait()
    finally:
        sampler.stop()
    run_info["locust_exit_code"] = locust.returncode
    if not records_path.exists():
        log_tail = "\n".join((args.out / "locust.log").read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"Locust recorded no request (exit code {locust.returncode}):\n{log_tail}")
    return _build_report(stack, run_info, read_records(records_path), counters_before, sampler.samples)


def _build_report(
    stack: Stack,
    run_info: dict[str, Any],
    records: list[RequestRecord],
    counters_before: dict[str, Any],
    samples: list[ResourceSample],
) -> LoadReport:
    captured, open_holds = stack.wait_settled(SETTLE_TIMEOUT_S)
    late = late_outputs(stack, unfinished_predictions(records))
    settings = stack.settings
    prices = {
        "replace_background": settings.price_replace_background,
        "remove_background": settings.price_remove_background,
    }
    t0 = min((record.start for record in records), default=time.time())
    duration_s = max((record.end for record in records), default=t0) - t0
    run_info["measured_s"] = round(duration_s, 1)
    return LoadReport(
        run=run_info,
        t0=t0,
        endpoints=endpoint_stats(records, duration_s),
        errors=error_counts(records),
        steps=step_stats(records, until=t0 + run_info["duration_s"]),
        timeline=timeline(records, t0, duration_s),
        credits=reconcile_credits(records, prices, captured, open_holds, late),
        triton=batch_stats(counters_before, model_counters(stack.model_statistics())),
        resources=summarize_resources(samples, t0, t0 + duration_s),
        resource_samples=samples,
    )


def late_outputs(stack: Stack, prediction_ids: Sequence[str]) -> dict[str, int]:
    """Outputs of predictions that succeeded after their client stopped polling (they are charged too)."""
    outputs: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {stack.keys[LOAD_ACCOUNT]}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        for prediction_id in prediction_ids:
            prediction = client.get(f"/v1/predictions/{prediction_id}").raise_for_status().json()
            if prediction["status"] == "succeeded":
                outputs["replace_background"] += len(prediction["output"])
    return dict(outputs)


def _locust_command(
    stack: Stack, args: argparse.Namespace, records_path: Path, *, key: str, duration: float, step: bool
) -> list[str]:
    files = f"{LOCUSTFILE},{SHAPEFILE}" if step else str(LOCUSTFILE)
    command = [sys.executable, "-m", "locust", "-f", files, "--headless", "--only-summary", "--loglevel", "WARNING"]
    command += ["--host", stack.url, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate)]
    command += ["--run-time", f"{round(duration)}s", "--stop-timeout", f"{round(args.stop_timeout)}s"]
    command += ["--api-key", key, "--grpc-target", stack.grpc_target]
    command += ["--records", str(records_path), "--exit-code-on-error", "0"]
    if step:
        command += ["--step-users", str(args.step_users), "--step-seconds", str(args.step_seconds)]
    return command


def _locust_environment() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPOSITORY), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _run_info(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "command": shlex.join(["python", "-m", "loadtests.run", *sys.argv[1:]]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "duration_s": args.duration,
        "step": {"users": args.step_users, "seconds": args.step_seconds} if args.step else None,
        "machine": _machine(),
        "code": _code_version(),
    }


def _code_version() -> str:
    """The commit measured, and whether the server code had uncommitted changes."""
    git = ["git", "-C", str(REPOSITORY)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--", "gateway", "replate", "model_repository"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = " with uncommitted changes in gateway/, replate/ or model_repository/" if changes.stdout.strip() else ""
    return commit.stdout.strip() + dirty


def _machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), platform.processor()
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_before": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _say(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
