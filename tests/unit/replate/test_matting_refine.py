"""Quality of the refinement against ground truth, with a degraded true alpha standing in for a segmenter's mask.

Numbers measured when these tests were written (hair: 640 x 480, seed 1; 1200 x 840 in the module docstring):
coarse mask SAD/px 0.033, MSE 0.012; refined SAD/px 0.0053, MSE 0.0011 (at 1200 x 840: 0.0032).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from replate.matting.refine import Refined, adaptive_trimap, estimate_foreground, refine_matte
from tests.unit.replate.synthetic import render_studio_shot

HAIR_RGB = np.array([120.0, 72.0, 40.0], dtype=np.float32)


@dataclass(frozen=True)
class HairShot:
    """rgb uint8 (H, W, 3); alpha float32 (H, W) in [0, 1]; foreground float32 (H, W, 3) in [0, 255]; hair bool
    (H, W), the pixels covered only partly by strands (0 < alpha < 1 outside the head's outline)."""

    rgb: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    hair: np.ndarray


def render_hair_shot(width: int, height: int, seed: int, strands: int = 160) -> HairShot:
    """A head with strands 0.4-1.6 px wide fanning out of it, on a mottled blue backdrop with sensor noise. Strand
    coverage is rasterised at 4x and area-averaged, so the true alpha of every strand pixel is known."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    unit = min(width, height) / 600.0
    cx, cy = width * 0.5, height * 0.62
    head = (np.hypot((x - cx) / (150 * unit), (y - cy) / (190 * unit)) - 1.0) * 150 * unit
    head_alpha = np.clip(0.5 - head / 1.2, 0, 1)
    canvas = np.zeros((height * 4, width * 4), np.uint8)
    for _ in range(strands):
        angle = rng.uniform(-2.6, -0.5)
        length = rng.uniform(60, 160) * unit
        curl = rng.uniform(-0.012, 0.012) / unit
        thickness = max(1, round(rng.uniform(0.4, 1.6) * 4))
        steps = np.arange(int(length * 4)) / 4
        heading = angle + curl * steps
        px = cx + 140 * unit * np.cos(angle) + np.cumsum(np.cos(heading)) / 4
        py = cy + 180 * unit * np.sin(angle) + np.cumsum(np.sin(heading)) / 4
        points = np.stack([px * 4, py * 4], axis=1).astype(np.int32)[:, None, :]
        cv2.polylines(canvas, [points], False, 255, thickness, cv2.LINE_8)
    strands_alpha = cv2.resize(canvas.astype(np.float32) / 255, (width, height), interpolation=cv2.INTER_AREA)
    alpha = (1 - (1 - head_alpha) * (1 - strands_alpha)).astype(np.float32)
    shade = 0.8 + 0.2 * np.sin(x / (7 * unit)) * np.cos(y / (11 * unit))
    foreground = HAIR_RGB * shade[:, :, None]
    mottle = rng.normal(0, 1, (height // 40 + 1, width // 40 + 1, 3)).astype(np.float32)
    backdrop = cv2.resize(mottle, (width, height), interpolation=cv2.INTER_CUBIC) * 14 + np.float32([90, 150, 200])
    backdrop += (y / height * 40)[:, :, None]
    composite = alpha[:, :, None] * foreground + (1 - alpha[:, :, None]) * backdrop
    composite += rng.normal(0, 2, composite.shape)
    rgb = np.clip(np.rint(composite), 0, 255).astype(np.uint8)
    hair = (alpha > 0) & (alpha < 1) & (head > 1)
    return HairShot(rgb=rgb, alpha=alpha, foreground=foreground.astype(np.float32), hair=hair)


def degrade(alpha: np.ndarray) -> np.ndarray:
    """float32 (H, W) in [0, 1]: what a 320 px segmenter makes of alpha: area-downsampled, blurred, pushed through
    a steep sigmoid (faint strands vanish, dense hair becomes a grey haze) and upsampled bilinearly."""
    height, width = alpha.shape
    small = cv2.GaussianBlur(cv2.resize(alpha, (320, 320), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    small = 1 / (1 + np.exp(-(small - 0.5) * 10))
    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def hair() -> HairShot:
    return render_hair_shot(640, 480, seed=1)


@pytest.fixture(scope="module")
def refined(hair: HairShot) -> Refined:
    return refine_matte(hair.rgb, degrade(hair.alpha))


def test_types_ranges_and_definite_regions(hair: HairShot, refined: Refined) -> None:
    assert refined.alpha.dtype == np.float32 and refined.alpha.shape == hair.alpha.shape
    assert refined.foreground.dtype == np.float32 and refined.foreground.shape == hair.rgb.shape
    assert refined.backdrop.dtype == np.float32 and refined.backdrop.shape == hair.rgb.shape
    assert refined.alpha.min() >= 0.0 and refined.alpha.max() <= 1.0
    assert refined.foreground.min() >= 0.0 and refined.foreground.max() <= 255.0
    assert (refined.alpha[refined.trimap.foreground] == 1.0).all()
    assert (refined.alpha[refined.trimap.backdrop] == 0.0).all()
    assert not (refined.trimap.foreground & refined.trimap.backdrop).any()


def test_refined_alpha_is_much_closer_to_the_truth_than_the_coarse_mask(hair: HairShot, refined: Refined) -> None:
    coarse = degrade(hair.alpha)
    coarse_sad, refined_sad = np.abs(coarse - hair.alpha).mean(), np.abs(refined.alpha - hair.alpha).mean()
    coarse_mse, refined_mse = ((coarse - hair.alpha) ** 2).mean(), ((refined.alpha - hair.alpha) ** 2).mean()
    print(f"SAD/px coarse {coarse_sad:.4f} refined {refined_sad:.4f}; MSE coarse {coarse_mse:.5f} {refined_mse:.5f}")
    assert refined_sad < 0.25 * coarse_sad  # measured 0.0053 vs 0.0331
    assert refined_mse < 0.15 * coarse_mse  # measured 0.0011 vs 0.0120


def test_thin_strands_keep_fractional_alpha(hair: HairShot, refined: Refined) -> None:
    strands = hair.hair & (hair.alpha > 0.2) & (hair.alpha < 0.8)
    assert strands.sum() > 500
    estimate = refined.alpha[strands]
    fractional = ((estimate > 0.05) & (estimate < 0.95)).mean()
    error = np.abs(estimate - hair.alpha[strands]).mean()
    print(f"strand pixels {strands.sum()}: fractional {fractional:.2f}, MAE {error:.3f}")
    assert fractional > 0.8  # measured 0.93
    assert error < 0.12  # measured 0.089
    assert np.abs(degrade(hair.alpha)[strands] - hair.alpha[strands]).mean() > 2 * error


def test_no_backdrop_colour_spills_on_the_strands(hair: HairShot, refined: Refined) -> None:
    mixed = hair.hair & (hair.alpha > 0.15) & (hair.alpha < 0.85)
    spill = np.abs(refined.foreground[mixed] - hair.foreground[mixed]).mean()
    naive = np.abs(hair.rgb[mixed].astype(np.float32) - hair.foreground[mixed]).mean()
    print(f"foreground error on mixed pixels: {spill:.1f} levels (the observed colour: {naive:.1f})")
    assert spill < 12.0  # measured 8.6
    assert spill < 0.3 * naive


def test_band_is_wide_in_hair_and_thin_on_hard_edges() -> None:
    shot = render_studio_shot(640, 430, seed=11)
    hard_edges = (shot.alpha > 0) & (shot.alpha < 1) & ~shot.glass
    studio = adaptive_trimap(shot.rgb, degrade(shot.alpha))
    hair = render_hair_shot(640, 480, seed=1)
    hairy = adaptive_trimap(hair.rgb, degrade(hair.alpha))
    hard_radius, hair_radius = np.median(studio.radius_px[hard_edges]), np.median(hairy.radius_px[hair.hair])
    print(f"band radius: hard edges {hard_radius:.1f} px, hair {hair_radius:.1f} px")
    assert hard_radius <= 3.0
    assert hair_radius > 3 * hard_radius
    assert hairy.unknown[hair.hair].mean() > 0.95  # every strand pixel is in the band
    assert studio.unknown.mean() < 0.03


def test_glass_keeps_fractional_alpha() -> None:
    shot = render_studio_shot(640, 430, seed=11)
    refined = refine_matte(shot.rgb, degrade(shot.alpha))
    glass = refined.alpha[shot.glass]
    print(f"glass alpha: mean {glass.mean():.2f} (true 0.45), coarse {degrade(shot.alpha)[shot.glass].mean():.2f}")
    assert 0.3 < np.median(glass) < 0.6


def test_foreground_is_the_image_where_opaque_and_unmixed_where_partial() -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:] = (200, 40, 40)
    rgb[:, 32:] = (0, 0, 255)
    alpha = np.zeros((64, 64), np.float32)
    alpha[:, 32:] = 1.0
    alpha[:, 31] = 0.5
    rgb[:, 31] = (100, 20, 147)  # half blue subject over the red backdrop
    foreground = estimate_foreground(rgb, alpha)
    np.testing.assert_allclose(foreground[:, 40:], np.broadcast_to(np.float32([0, 0, 255]), (64, 24, 3)), atol=1)
    assert np.abs(foreground[10, 31] - np.float32([0, 0, 255])).max() < 25


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="uint8"):
        refine_matte(np.zeros((40, 40, 3), np.float32), np.zeros((40, 40), np.float32))
    with pytest.raises(ValueError, match="must match"):
        refine_matte(np.zeros((40, 40, 3), np.uint8), np.zeros((40, 41), np.float32))


def test_one_megapixel_timing() -> None:
    shot = render_hair_shot(1200, 840, seed=2)
    coarse = degrade(shot.alpha)
    refine_matte(shot.rgb, coarse)
    start = time.perf_counter()
    refined = refine_matte(shot.rgb, coarse)
    elapsed_s = time.perf_counter() - start
    print(f"refine 1200x840: {elapsed_s * 1000:.0f} ms, SAD/px {np.abs(refined.alpha - shot.alpha).mean():.4f}")
    assert elapsed_s < 1.0  # measured 0.25-0.3 s on 2 CPU cores
