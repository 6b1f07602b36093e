"""The matting benchmark: metrics on hand-made arrays, the generated set, references and a tiny run."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from export.matting import ColourKeySegmenter, export_segmenter
from replate.quality import metrics
from replate.quality.dataset import BACKDROPS, CATEGORIES, frame_size, generate_sample, generate_samples
from replate.quality.references import OracleUnavailable, oracle_matte, true_trimap
from replate.quality.run import (
    REPORT_BEGIN,
    REPORT_END,
    Report,
    add_bench_matting_arguments,
    bench_matting_command,
    render_markdown,
    run_benchmark,
    write_report,
)

TINY_MP = 0.02  # 174 x 116 px


# ---------------------------------------------------------------- metrics


def test_sad_of_a_known_difference() -> None:
    truth = np.zeros((100, 100), dtype=np.float32)
    alpha = truth.copy()
    alpha[:20, :50] = 0.5  # 1000 pixels off by 0.5
    assert metrics.sad(alpha, truth) == pytest.approx(0.5)
    assert metrics.mse(alpha, truth) == pytest.approx(1000 * 0.25 / 10000)


def test_metrics_are_zero_for_identical_mattes() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (64, 80)).astype(np.float32)
    assert metrics.sad(truth, truth) == 0.0
    assert metrics.mse(truth, truth) == 0.0
    assert metrics.gradient_error(truth, truth) == 0.0
    assert metrics.connectivity_error(truth, truth) == 0.0


def test_gradient_error_is_zero_for_flat_mattes_and_positive_for_an_edge() -> None:
    flat = np.full((40, 40), 0.3, dtype=np.float32)
    assert metrics.gradient_error(flat, np.full_like(flat, 0.7)) == pytest.approx(0.0, abs=1e-9)
    edge = flat.copy()
    edge[:, 20:] = 1.0
    assert metrics.gradient_error(edge, flat) > 0


def test_connectivity_of_hand_computed_cases() -> None:
    truth = np.zeros((60, 60), dtype=np.float32)
    truth[20:40, 20:40] = 1.0
    half = truth * 0.5  # source region up to t = 0.5, so l = 0.5 inside: phi(alpha) = 1, phi(truth) = 0.5
    assert metrics.connectivity_error(half, truth) == pytest.approx(400 * 0.5 / 1000)
    haze = truth.copy()
    haze[truth == 0] = 0.1  # below theta = 0.15 above l = 0: costs SAD, not connectivity
    assert metrics.sad(haze, truth) == pytest.approx(0.32)
    assert metrics.connectivity_error(haze, truth) == 0.0


def test_boundary_band_covers_the_contour_and_the_fractional_region() -> None:
    truth = np.zeros((50, 50), dtype=np.float32)
    truth[10:40, 10:40] = 1.0
    truth[5, 5] = 0.5
    band = metrics.boundary_band(truth, radius_px=2)
    assert band[10, 25] and band[9, 25] and band[5, 5] and band[7, 5]
    assert not band[25, 25] and not band[0, 45]
    alpha = truth.copy()
    alpha[25, 25] = 0.0  # outside the band: counts in SAD, not in band SAD
    assert metrics.boundary_band_sad(alpha, truth, band) == 0.0
    assert metrics.sad(alpha, truth) == pytest.approx(0.001)


def test_colour_spill_is_zero_for_the_true_composite_and_sees_a_halo() -> None:
    truth = np.zeros((20, 20), dtype=np.float32)
    truth[5:15, 5:15] = 1.0
    foreground = np.full((20, 20, 3), 200.0, dtype=np.float32)
    backdrop = (0, 0, 255)
    perfect = truth[:, :, None] * foreground + (1 - truth[:, :, None]) * np.array(backdrop, dtype=np.float32)
    band = metrics.boundary_band(truth, 1)
    assert metrics.colour_spill(perfect, truth, foreground, backdrop, band) == pytest.approx(0.0)
    halo = perfect.copy()
    halo[4, 5:15] = (230, 230, 230)  # a line of the old white backdrop left outside the subject
    assert metrics.colour_spill(halo, truth, foreground, backdrop, band) > 5.0


# ---------------------------------------------------------------- dataset


def test_generated_samples_are_deterministic_and_cover_every_category_and_backdrop() -> None:
    first = list(generate_samples(TINY_MP, 2, seed=3))
    again = list(generate_samples(TINY_MP, 2, seed=3))
    assert [s.category for s in first[::2]] == list(CATEGORIES)
    assert {s.backdrop for s in first} == set(BACKDROPS)
    for a, b in zip(first, again, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.alpha, b.alpha)
    other = generate_sample("hair", 0, TINY_MP, seed=4)
    assert not np.array_equal(other.alpha, first[0].alpha)


def test_sample_layers_have_the_documented_types_and_sizes() -> None:
    sample = generate_sample("soft_shadow", 1, TINY_MP, seed=0)
    width, height = frame_size(TINY_MP)
    assert sample.image.shape == (height, width, 3) and sample.image.dtype == np.uint8
    assert sample.alpha.shape == (height, width) and sample.alpha.dtype == np.float32
    assert sample.foreground.shape == sample.background.shape == (height, width, 3)
    assert sample.alpha.min() >= 0.0 and sample.alpha.max() <= 1.0
    composite = sample.alpha[:, :, None] * sample.foreground + (1 - sample.alpha[:, :, None]) * sample.background
    # The image is that composite plus noise and JPEG artefacts, nothing else.
    assert np.abs(sample.image.astype(np.float32) - composite).mean() < 4.0


def test_hair_has_fractional_truth_and_holes_show_the_backdrop_inside_the_subject() -> None:
    hair = generate_sample("hair", 0, 0.05, seed=0)
    fractional = (hair.alpha > 0.02) & (hair.alpha < 0.98)
    assert fractional.mean() > 0.05
    holes = generate_sample("holes", 0, 0.05, seed=0)
    height, width = holes.alpha.shape
    assert (holes.alpha == 0).mean() > 0.3 and (holes.alpha == 1).mean() > 0.1
    assert holes.alpha[height // 2, width // 10] == 0.0
    glass = generate_sample("glass", 0, 0.05, seed=0)
    assert glass.alpha.max() < 1.0  # translucent everywhere


def test_soft_shadow_is_in_the_background_not_in_the_alpha() -> None:
    sample = generate_sample("soft_shadow", 1, 0.05, seed=0)  # studio backdrop
    shadowed = (sample.alpha == 0) & (sample.background.mean(axis=2) < 0.8 * np.median(sample.background))
    assert shadowed.sum() > 100


# ---------------------------------------------------------------- references


def test_true_trimap_marks_the_fractional_region_unknown() -> None:
    truth = np.zeros((30, 30), dtype=np.float32)
    truth[10:20, 10:20] = 1.0
    truth[10, 10:20] = 0.5
    trimap = true_trimap(truth, radius_px=1)
    assert trimap[15, 15] == 1.0 and trimap[0, 0] == 0.0
    assert trimap[10, 15] == 0.5 and trimap[9, 15] == 0.5 and trimap[11, 15] == 0.5


def test_oracle_recovers_a_soft_edge_and_refuses_an_all_translucent_subject() -> None:
    sample = generate_sample("motion_blur", 0, TINY_MP, seed=0)
    matte = oracle_matte(sample.image, sample.alpha, radius_px=3)
    assert matte.alpha.shape == sample.alpha.shape
    assert metrics.sad(matte.alpha / 255.0, sample.alpha) < 0.5 * metrics.sad(np.zeros_like(sample.alpha), sample.alpha)
    glass = generate_sample("glass", 0, TINY_MP, seed=0)
    with pytest.raises(OracleUnavailable):
        oracle_matte(glass.image, glass.alpha, radius_px=3)


# ---------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def tiny_report() -> Report:
    return run_benchmark(["studio", "no-such-engine"], [TINY_MP], 1, seed=0, models_dir=Path("/nonexistent"))


def test_tiny_run_scores_every_category_at_full_resolution(tiny_report: Report) -> None:
    studio = [s for s in tiny_report.scores if s.method == "studio"]
    assert [s.category for s in studio] == list(CATEGORIES)
    assert all(s.is_full_resolution for s in studio)
    assert all(np.isfinite([s.sad, s.mse, s.gradient, s.connectivity, s.band_sad, s.spill]).all() for s in studio)
    assert any("no-such-engine" in note for note in tiny_report.notes)
    assert "oracle-cf-trimap" in tiny_report.methods


def test_tiny_run_renders_a_markdown_table(tiny_report: Report) -> None:
    markdown = render_markdown(tiny_report)
    assert "| category | method | SAD |" in markdown
    assert "| hair | studio |" in markdown
    assert "| **average** | **studio** |" in markdown
    assert "| engine | category | SAD / naive |" in markdown


def test_write_report_keeps_the_hand_written_text_around_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "quality.md"
    write_report(path, "first\n")
    path.write_text("# Preface\n\n" + path.read_text() + "\n## After\n")
    write_report(path, "second\n")
    text = path.read_text()
    assert text.startswith("# Preface") and text.rstrip().endswith("## After")
    assert "second" in text and "first" not in text
    assert text.count(REPORT_BEGIN) == 1 and text.count(REPORT_END) == 1


def test_command_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "quality.md"
    status = bench_matting_command(
        [
            "--engines",
            "studio",
            "--megapixels",
            str(TINY_MP),
            "--samples",
            "1",
            "--no-oracle",
            "--no-contact-sheet",
            "--models-dir",
            str(tmp_path),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert "| **average** | **studio** |" in out.read_text()
    assert "MP done in" in capsys.readouterr().out


def test_options_mount_on_a_subparser() -> None:
    parser = argparse.ArgumentParser(prog="replate")
    matting = parser.add_subparsers().add_parser("bench").add_subparsers().add_parser("matting")
    add_bench_matting_arguments(matting)
    args = parser.parse_args(["bench", "matting", "--engines", "studio", "--samples", "3", "--no-oracle"])
    assert (args.engines, args.samples, args.no_oracle, args.megapixels) == ("studio", 3, True, "0.25,1")
    assert args.out == Path("docs/quality.md") and args.contact_sheet == Path("docs/contact-sheet.jpg")


def test_command_scores_auto_on_a_segmenter_given_by_path(tmp_path: Path) -> None:
    keyed = export_segmenter(ColourKeySegmenter(logits=True), tmp_path / "keyed.onnx", size=1024)
    out = tmp_path / "quality.md"
    argv = ["--engines", "auto", "--megapixels", str(TINY_MP), "--samples", "1", "--no-oracle", "--no-contact-sheet"]
    argv += ["--segmenter", str(keyed), "--segmenter-format", "birefnet", "--models-dir", str(tmp_path)]
    assert bench_matting_command([*argv, "--out", str(out)]) == 0
    assert "| **average** | **auto:keyed** |" in out.read_text()
