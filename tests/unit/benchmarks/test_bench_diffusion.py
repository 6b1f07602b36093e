"""benchmarks.bench_diffusion end to end with minimal settings: it builds the tiny build, times it, prints a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bench_diffusion import ComponentTiming, Timing, component_cases, component_sum_ms, main, random_inputs


def test_the_benchmark_prints_every_component_and_the_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    code = main(
        ["--steps", "20", "--batches", "1", "--repeat", "1", "--request-repeat", "1", "--json", str(report_path)]
    )
    table = capsys.readouterr().out
    assert code == 0
    for row in ("| text_encoder | 2 |", "| unet (per step) | 1 |", "| unet (per step) | 2 |", "| vae_decoder | 1 |"):
        assert row in table
    assert "whole request, 20 steps" in table and "serving overhead" in table
    report = json.loads(report_path.read_text())
    assert report["setting"]["size_px"] == 64 and report["request"]["p50_ms"] > 0
    assert set(report["stages_ms"]) == {"encode", "denoise", "decode", "total"}


def test_random_inputs_follow_the_manifest_shapes() -> None:
    specs = {
        "input_ids": {"dtype": "int64", "shape": ["B", 77]},
        "down_residual_3": {"dtype": "float32", "shape": ["B", 64, "h/2", "w/2"]},
    }
    tensors = random_inputs(specs, {"B": 3, "H": 256, "W": 128, "h": 32, "w": 16})
    assert tensors["input_ids"].shape == (3, 77) and tensors["input_ids"].dtype.name == "int64"
    assert tensors["down_residual_3"].shape == (3, 64, 16, 8) and tensors["down_residual_3"].dtype.name == "float32"


def test_the_component_sum_counts_the_per_step_models_once_a_step_at_the_guided_batch() -> None:
    manifest = {"components": dict.fromkeys(["diffusion_text_encoder", "diffusion_unet", "diffusion_vae_decoder"])}
    cases = component_cases(manifest, [1, 2])
    assert cases == [
        ("diffusion_text_encoder", 2),
        ("diffusion_unet", 1),
        ("diffusion_unet", 2),
        ("diffusion_vae_decoder", 1),
    ]
    p50 = {("diffusion_text_encoder", 2): 3.0, ("diffusion_unet", 1): 7.0, ("diffusion_unet", 2): 10.0}
    timings = [ComponentTiming(model, batch, Timing(p50.get((model, batch), 5.0), 0.0, 1)) for model, batch in cases]
    assert component_sum_ms(timings, steps=20) == 3.0 + 20 * 10.0 + 5.0
