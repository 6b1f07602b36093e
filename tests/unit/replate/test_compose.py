from __future__ import annotations

import time

import numpy as np
import pytest

from replate.compose import compose, cutout
from replate.matting import Matte, estimate_matte
from tests.unit.replate.synthetic import render_studio_shot


@pytest.fixture(scope="module")
def studio() -> tuple[np.ndarray, Matte, np.ndarray]:
    shot = render_studio_shot(400, 270, seed=21)
    matte = estimate_matte(shot.rgb)
    scene = np.random.default_rng(0).integers(0, 256, shot.rgb.shape, dtype=np.uint8)
    return shot.rgb, matte, scene


def _matte(alpha: np.ndarray, foreground: np.ndarray, shading: np.ndarray | None = None) -> Matte:
    return Matte(alpha=alpha, foreground=foreground, shading=shading, engine="test", timings_ms={})


def test_opaque_pixels_are_bit_exact(studio: tuple[np.ndarray, Matte, np.ndarray]) -> None:
    image, matte, scene = studio
    out = compose(image, matte, scene)
    opaque = matte.alpha == 255
    assert opaque.sum() > 1000
    np.testing.assert_array_equal(out[opaque], image[opaque])


def test_opaque_pixels_come_from_the_image_even_if_foreground_differs() -> None:
    image = np.full((4, 4, 3), 200, np.uint8)
    matte = _matte(np.full((4, 4), 255, np.uint8), np.full((4, 4, 3), 10, np.uint8))
    np.testing.assert_array_equal(compose(image, matte, np.zeros_like(image)), image)
    np.testing.assert_array_equal(cutout(image, matte)[:, :, :3], image)


def test_clear_pixels_are_the_scene_without_shadow_preservation(studio: tuple[np.ndarray, Matte, np.ndarray]) -> None:
    image, matte, scene = studio
    out = compose(image, matte, scene, preserve_shadow=False)
    clear = matte.alpha == 0
    np.testing.assert_array_equal(out[clear], scene[clear])


def test_shadow_darkens_only_when_preserved(studio: tuple[np.ndarray, Matte, np.ndarray]) -> None:
    image, matte, scene = studio
    assert matte.shading is not None
    shadowed = (matte.alpha == 0) & (matte.shading < 230)
    unshadowed = (matte.alpha == 0) & (matte.shading == 255)
    assert shadowed.sum() > 100
    kept = compose(image, matte, scene, preserve_shadow=True).astype(int)
    dropped = compose(image, matte, scene, preserve_shadow=False).astype(int)
    assert (kept[shadowed] <= dropped[shadowed]).all()
    assert (kept[shadowed].sum(axis=1) < dropped[shadowed].sum(axis=1)).mean() > 0.9
    np.testing.assert_array_equal(kept[unshadowed], dropped[unshadowed])


def test_blend_arithmetic_is_rounded_exactly() -> None:
    image = np.zeros((1, 3, 3), np.uint8)
    alpha = np.array([[128, 64, 0]], np.uint8)
    foreground = np.full((1, 3, 3), 200, np.uint8)
    shading = np.array([[255, 255, 128]], np.uint8)
    scene = np.full((1, 3, 3), 100, np.uint8)
    out = compose(image, _matte(alpha, foreground, shading), scene)
    expected = [round((128 * 200 + 127 * 100) / 255), round((64 * 200 + 191 * 100) / 255), round(100 * 128 / 255)]
    np.testing.assert_array_equal(out[0, :, 0], expected)


def test_cutout_is_foreground_plus_alpha(studio: tuple[np.ndarray, Matte, np.ndarray]) -> None:
    image, matte, _ = studio
    rgba = cutout(image, matte)
    assert rgba.dtype == np.uint8 and rgba.shape == (*image.shape[:2], 4)
    np.testing.assert_array_equal(rgba[:, :, 3], matte.alpha)
    np.testing.assert_array_equal(rgba[:, :, :3], matte.foreground)
    opaque = matte.alpha == 255
    np.testing.assert_array_equal(rgba[opaque, :3], image[opaque])


def test_shape_mismatches_are_programming_errors(studio: tuple[np.ndarray, Matte, np.ndarray]) -> None:
    image, matte, scene = studio
    with pytest.raises(ValueError, match="scene"):
        compose(image, matte, scene[:-1])
    with pytest.raises(ValueError, match="matte"):
        compose(image[:-1], matte, scene[:-1])
    with pytest.raises(ValueError, match="matte"):
        cutout(image[:, :-1], matte)
    with pytest.raises(ValueError, match="uint8"):
        compose(image.astype(np.float32), matte, scene)


def test_one_megapixel_compose_timing_is_reported() -> None:
    rng = np.random.default_rng(1)
    shape = (840, 1250)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    matte = _matte(rng.integers(0, 256, shape, dtype=np.uint8), image.copy(), rng.integers(0, 256, shape, np.uint8))
    scene = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    start = time.perf_counter()
    compose(image, matte, scene)
    print(f"compose 1250x840: {(time.perf_counter() - start) * 1000:.1f} ms")
