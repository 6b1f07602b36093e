"""Latency of the diffusion stage in-process on this machine: export.diffusion's tiny random build (ControlNet and
IP-Adapter included, cpu-python target) through onnxruntime (replate.diffusion.LocalComponents).

Tiny random models on the CPU: the figures measure the serving path around the models (tokenizers, scheduler,
conditioning, numpy conversions, one onnxruntime call per component), not a real model's cost, nor image quality.
benchmarks/gpu_diffusion.py runs the same measurement (`run_benchmark`) at full size on a GPU. Prints a markdown
table. Run from the repository root:

    python -m benchmarks.bench_diffusion [--family sd|sdxl] [--steps 20] [--repeat 20] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from export.diffusion import build_tiny, export_build
from export.diffusion.components import axis_sizes
from replate.diffusion import Build, Components, LocalComponents, SceneRequest, generate, load_build
from tests.synthetic import make_studio_shot

PROMPT = "a photo of the beach at sunset"
NEGATIVE_PROMPT = "blurry"  # an explicit one: every family's text encoders then see the guided batch of two
GUIDED_BATCH = 2  # classifier-free guidance: unconditional and conditional rows in one UNet / ControlNet call
PER_STEP = ("diffusion_controlnet", "diffusion_unet")
BATCHES = (1, 2, 4)


@dataclass(frozen=True)
class Timing:
    """Wall-clock latency over `runs` calls after one warm-up call."""

    p50_ms: float
    p95_ms: float
    runs: int


@dataclass(frozen=True)
class ComponentTiming:
    model: str
    batch: int
    timing: Timing


@dataclass(frozen=True)
class Report:
    """One benchmark run: `setting` says where and on what (device, family, size, steps)."""

    setting: dict[str, Any]
    components: list[ComponentTiming]
    request: Timing
    stages_ms: dict[str, float]
    """Median of generate()'s own timings_ms (encode, denoise, decode, total) over the request runs."""
    component_sum_ms: float
    """The p50 of the request's component calls added up: the rest of the request's p50 is the loop's own cost."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        steps = self.setting["steps"]
        lines = ["| call | batch | p50 ms | p95 ms |", "|---|---:|---:|---:|"]
        for entry in self.components:
            label = entry.model.removeprefix("diffusion_") + (" (per step)" if entry.model in PER_STEP else "")
            lines.append(f"| {label} | {entry.batch} | {entry.timing.p50_ms:.2f} | {entry.timing.p95_ms:.2f} |")
        request = f"whole request, {steps} steps, CFG (one image)"
        lines.append(f"| {request} | 1 | {self.request.p50_ms:.1f} | {self.request.p95_ms:.1f} |")
        lines.append(f"| sum of the request's component calls | | {self.component_sum_ms:.1f} | |")
        overhead = self.request.p50_ms - self.component_sum_ms
        lines.append(f"| serving overhead (request - component calls) | | {overhead:.1f} | |")
        stages = ", ".join(f"{name} {ms:.1f} ms" for name, ms in self.stages_ms.items())
        return "\n".join(lines) + f"\n\nrequest stages (p50): {stages}"


async def time_calls(call: Callable[[], Awaitable[object]], repeat: int) -> Timing:
    await call()  # warm-up: first-call costs (allocations, a new input shape) are not steady state
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    p50, p95 = np.percentile(samples, [50, 95])
    return Timing(float(p50), float(p95), repeat)


def random_inputs(specs: Mapping[str, Mapping[str, Any]], sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Random tensors for a manifest component's `inputs` ({name: {"dtype", "shape"}}, shape entries ints or axis
    names such as "B", "h/2") at `sizes` (export.diffusion.components.axis_sizes). Values do not change latency."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name, spec in specs.items():
        shape = tuple(_dimension(dim, sizes) for dim in spec["shape"])
        if spec["dtype"] == "int64":
            tensors[name] = rng.integers(0, 256, shape, dtype=np.int64)  # token ids below any vocabulary's size
        else:
            tensors[name] = rng.standard_normal(shape, dtype=np.float32)
    return tensors


def _dimension(dim: int | str, sizes: Mapping[str, int]) -> int:
    if isinstance(dim, int):
        return dim
    axis, _, divisor = dim.partition("/")
    return sizes[axis] // int(divisor or 1)


def component_cases(manifest: Mapping[str, Any], batches: Sequence[int]) -> list[tuple[str, int]]:
    """(model, batch) to time: the per-step models at each batch, the text encoders at the guided batch (prompt and
    negative prompt), the rest at 1 (one image per request)."""
    cases = []
    for model in manifest["components"]:
        if model in PER_STEP:
            cases += [(model, batch) for batch in batches]
        else:
            cases.append((model, GUIDED_BATCH if model.startswith("diffusion_text_encoder") else 1))
    return cases


async def measure_components(
    manifest: Mapping[str, Any], components: Components, *, size_px: int, batches: Sequence[int], repeat: int
) -> list[ComponentTiming]:
    timings = []
    for model, batch in component_cases(manifest, batches):
        spec = manifest["components"][model]
        inputs = random_inputs(spec["inputs"], axis_sizes(batch, size_px, size_px, manifest["vae_scale_factor"]))
        call = functools.partial(components.infer, model, inputs, list(spec["outputs"]))
        timings.append(ComponentTiming(model, batch, await time_calls(call, repeat)))
    return timings


def component_sum_ms(timings: Sequence[ComponentTiming], steps: int) -> float:
    """p50 of one guided request's component calls: each once-per-request model once, the per-step models at the
    guided batch `steps` times."""
    p50 = {(entry.model, entry.batch): entry.timing.p50_ms for entry in timings}
    once = sum(ms for (model, _), ms in p50.items() if model not in PER_STEP)
    per_step = sum(ms for (model, batch), ms in p50.items() if model in PER_STEP and batch == GUIDED_BATCH)
    return once + steps * per_step


def scene_request(size_px: int, steps: int) -> SceneRequest:
    """A guided request at size_px square (the working size of mode "quality"), with a reference image."""
    image, alpha = make_studio_shot(size_px, size_px, seed=0)
    reference, _ = make_studio_shot(size_px, size_px, seed=1)
    return SceneRequest(
        image=image,
        alpha=np.round(alpha * 255).astype(np.uint8),
        prompt=PROMPT,
        negative_prompt=NEGATIVE_PROMPT,
        reference=reference,
        mode="quality",
        num_inference_steps=steps,
    )


async def measure_request(
    build: Build, components: Components, *, steps: int, repeat: int
) -> tuple[Timing, dict[str, float]]:
    """Latency of generate() on one guided request, and the median of its own stage timings."""
    request = scene_request(build.manifest.default_size, steps)
    stages: list[dict[str, float]] = []

    async def run() -> None:
        stages.append((await generate(request, build, components)).info["timings_ms"])

    timing = await time_calls(run, repeat)
    return timing, {name: statistics.median(run[name] for run in stages[1:]) for name in stages[0]}


async def run_benchmark(
    build: Build,
    manifest: Mapping[str, Any],
    components: Components,
    *,
    setting: dict[str, Any],
    batches: Sequence[int] = BATCHES,
    repeat: int,
    request_repeat: int,
) -> Report:
    """Time every component of the build at its default size, then whole requests of setting["steps"] steps."""
    size_px, steps = build.manifest.default_size, setting["steps"]
    batches = sorted({*batches, GUIDED_BATCH})
    timings = await measure_components(manifest, components, size_px=size_px, batches=batches, repeat=repeat)
    request, stages = await measure_request(build, components, steps=steps, repeat=request_repeat)
    setting = {**setting, "size_px": size_px, "family": build.manifest.family}
    return Report(setting, timings, request, stages, component_sum_ms(timings, steps))


def export_tiny(dst: Path, family: str) -> Path:
    """The tiny random build (ControlNet, IP-Adapter) of family under dst, cpu-python target; returns its folder."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers / transformers / torch.onnx deprecations while exporting
        models = build_tiny(dst / "models", family)  # type: ignore[arg-type]
        export_build(
            models.pipeline,
            dst / "build",
            target="cpu-python",
            controlnet_dir=models.controlnet,
            ip_adapter_dir=models.ip_adapter,
        )
    return dst / "build"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setting = {
        "device": f"CPU, {os.cpu_count()} cores",
        "runtime": f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider, in-process, threads {args.threads})",
        "models": "tiny random (export.diffusion.tiny), FP32",
        "steps": args.steps,
    }
    with tempfile.TemporaryDirectory(prefix="replate-bench-diffusion-") as tmp:
        build_dir = export_tiny(Path(tmp), args.family)
        manifest = json.loads((build_dir / "diffusion.json").read_text())
        benchmark = run_benchmark(
            load_build(build_dir),
            manifest,
            LocalComponents(build_dir, threads=args.threads),
            setting=setting,
            batches=args.batches,
            repeat=args.repeat,
            request_repeat=args.request_repeat,
        )
        report = asyncio.run(benchmark)
    print(", ".join(f"{key}: {value}" for key, value in report.setting.items()))
    print(report.markdown())
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_diffusion", description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("sd", "sdxl"), default="sd")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps of the whole request (20..100)")
    parser.add_argument("--batches", type=_batches, default=BATCHES, help="per-step batch sizes, e.g. 1,2,4")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per component (after a warm-up)")
    parser.add_argument("--request-repeat", type=int, default=3, help="timed whole requests (after a warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    return parser


def _batches(text: str) -> tuple[int, ...]:
    return tuple(int(size) for size in text.split(","))


if __name__ == "__main__":
    raise SystemExit(main())
