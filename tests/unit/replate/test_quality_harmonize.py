"""The harmonisation benchmark: its generated set, the acceptance on it, the report and the command."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import pytest

from replate.quality.harmonize_bench import (
    REPORT_MARKERS,
    HarmonizeReport,
    add_bench_harmonize_arguments,
    bench_harmonize_from_args,
    render_harmonize_markdown,
    run_harmonize_benchmark,
)
from replate.quality.harmonize_set import LIGHT_CATEGORIES, generate_harmonization_sample
from replate.quality.run import REPORT_BEGIN, REPORT_END, write_report

TINY_MP = 0.05


def test_samples_are_deterministic_with_the_documented_layers() -> None:
    first = generate_harmonization_sample("mixed", 1, TINY_MP, seed=3)
    again = generate_harmonization_sample("mixed", 1, TINY_MP, seed=3)
    assert first.name == again.name == "mixed-01-textured-motorcycle"
    for layer in ("image", "alpha", "scene", "truth"):
        assert np.array_equal(getattr(first, layer), getattr(again, layer))
        assert getattr(first, layer).dtype == np.uint8
    assert first.alpha.shape == first.image.shape[:2] == first.scene.shape[:2] == first.truth.shape[:2]


@pytest.mark.parametrize("category", LIGHT_CATEGORIES)
def test_the_truth_is_the_scene_around_the_subject_and_differs_where_it_is(category: str) -> None:
    sample = generate_harmonization_sample(category, 0, TINY_MP, seed=0)
    clear, opaque = sample.alpha == 0, sample.alpha == 255
    assert np.array_equal(sample.truth[clear], sample.scene[clear])
    difference = np.abs(sample.truth[opaque].astype(int) - sample.image[opaque].astype(int)).mean()
    assert difference > 2.0, "lights A and B differ, so the pasted subject is not the truth"


@pytest.fixture(scope="module")
def reported_samples() -> HarmonizeReport:
    """The samples of the reported run (seed 0, 8 per category) at a quarter of its size."""
    return run_harmonize_benchmark(0.25, 8, 0, (0.0, 1.0))


def test_harmonize_one_lowers_mse_and_delta_e_on_every_light_category(reported_samples: HarmonizeReport) -> None:
    for category in LIGHT_CATEGORIES:
        chosen = [s for s in reported_samples.scores if s.category == category]
        before = [s for s in chosen if s.strength == 0.0]
        after = [s for s in chosen if s.strength == 1.0]
        assert len(before) == len(after) == 8
        assert statistics.fmean(s.mse for s in after) < statistics.fmean(s.mse for s in before), category
        assert statistics.fmean(s.delta_e for s in after) < statistics.fmean(s.delta_e for s in before), category


def test_report_has_the_table_the_verdict_and_the_light_sides(reported_samples: HarmonizeReport) -> None:
    markdown = render_harmonize_markdown(reported_samples)
    assert "| colour_cast | 0 |" in markdown and "| **all** | 1 |" in markdown
    assert "lowers mean MSE and mean ΔE2000 against harmonize 0 on every light category" in markdown
    assert "| studio |" in markdown and "the scene's estimate is right on" in markdown


def test_command_writes_its_report_beside_the_matting_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "quality.md"
    write_report(out, "matting numbers\n")
    parser = argparse.ArgumentParser()
    add_bench_harmonize_arguments(parser)
    args = parser.parse_args(["--megapixels", str(TINY_MP), "--samples", "1", "--no-contact-sheet", "--out", str(out)])
    assert bench_harmonize_from_args(args) == 0
    text = out.read_text()
    assert "matting numbers" in text and text.index(REPORT_END) < text.index(REPORT_MARKERS[0])
    assert text.count(REPORT_BEGIN) == 1 and text.count(REPORT_MARKERS[1]) == 1
    assert "| direction | 0 |" in text and "wrote" in capsys.readouterr().out


def test_options_mount_on_a_subparser() -> None:
    parser = argparse.ArgumentParser(prog="replate")
    harmonize = parser.add_subparsers().add_parser("bench").add_subparsers().add_parser("harmonize")
    add_bench_harmonize_arguments(harmonize)
    args = parser.parse_args(["bench", "harmonize", "--samples", "3"])
    assert (args.samples, args.megapixels, args.seed, args.strengths) == (3, 1.0, 0, "0,0.5,1")
    assert args.out == Path("docs/quality.md") and args.contact_sheet == Path("docs/harmonize-sheet.jpg")
