from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from replate import matting
from replate.compose import compose
from replate.errors import InvalidRequest, SubjectNotFound
from replate.matting import ENGINE_NAMES, Matte, StudioMatting, create_engine, estimate_matte
from replate.quality.dataset import generate_sample
from tests.unit.replate.synthetic import StudioShot, render_studio_shot

WIDTH, HEIGHT = 640, 430


@pytest.fixture(scope="module")
def shot() -> StudioShot:
    return render_studio_shot(WIDTH, HEIGHT, seed=11)


@pytest.fixture(scope="module")
def matte(shot: StudioShot) -> Matte:
    return estimate_matte(shot.rgb)


def _distance_from_outline(alpha_true: np.ndarray, inside: bool) -> np.ndarray:
    """float32 (H, W): px from the nearest pixel not fully inside (alpha 1) / not fully outside (alpha 0)."""
    region = alpha_true >= 1.0 if inside else alpha_true <= 0.0
    return cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)


def test_public_surface_and_registry() -> None:
    assert set(matting.__all__) == {
        "ENGINE_NAMES",
        "SEGMENTER_SIZE",
        "AutoMatting",
        "Matte",
        "MattingEngine",
        "OnnxSegmenter",
        "Segment",
        "SegmenterMatting",
        "SegmenterSpec",
        "StudioMatting",
        "coarse_mask",
        "create_engine",
        "estimate_matte",
        "estimate_mattes",
        "segmenter_input",
    }
    assert set(ENGINE_NAMES) == {"auto", "studio", "u2net", "u2netp"}
    assert create_engine("studio").name == "studio"


def test_matte_types_and_shapes(shot: StudioShot, matte: Matte) -> None:
    assert matte.engine == "studio"
    assert matte.alpha.dtype == np.uint8 and matte.alpha.shape == (HEIGHT, WIDTH)
    assert matte.foreground.dtype == np.uint8 and matte.foreground.shape == (HEIGHT, WIDTH, 3)
    assert matte.shading is not None and matte.shading.dtype == np.uint8 and matte.shading.shape == (HEIGHT, WIDTH)
    assert {"backdrop", "segment", "alpha", "total"} <= set(matte.timings_ms)


def test_alpha_error_is_small(shot: StudioShot, matte: Matte) -> None:
    error = np.abs(matte.alpha / 255.0 - shot.alpha)
    edge = (shot.alpha > 0) & (shot.alpha < 1) & ~shot.glass
    assert error.mean() < 0.01  # measured ~0.001
    assert error[edge].mean() < 0.06  # anti-aliased and soft outline pixels; measured ~0.02-0.03


def test_interior_is_exactly_opaque_and_far_backdrop_exactly_clear(shot: StudioShot, matte: Matte) -> None:
    interior = _distance_from_outline(shot.alpha, inside=True) > 2
    # 5 px, not less: the narrow notch where the mug handle meets the body gets a few partial pixels at 4.2 px.
    far_backdrop = _distance_from_outline(shot.alpha, inside=False) > 5
    assert interior.sum() > 0.05 * interior.size
    assert (matte.alpha[interior] == 255).all()
    assert (matte.alpha[far_backdrop] == 0).all()  # including the cast shadow


def test_handle_hole_shows_backdrop(shot: StudioShot, matte: Matte) -> None:
    clear = (shot.alpha <= 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(clear, connectivity=4)
    border_labels = set(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).tolist())
    holes = [label for label in range(1, count) if label not in border_labels]
    assert holes, "the synthetic mug handle should enclose backdrop"
    hole = np.isin(labels, holes) & (_distance_from_outline(shot.alpha, inside=False) > 3)
    assert (matte.alpha[hole] == 0).all()


def test_foreground_is_the_input_where_opaque(shot: StudioShot, matte: Matte) -> None:
    opaque = matte.alpha == 255
    np.testing.assert_array_equal(matte.foreground[opaque], shot.rgb[opaque])


def test_foreground_colours_are_unmixed_at_the_outline(shot: StudioShot, matte: Matte) -> None:
    # A half-covered pixel is a mix with the grey backdrop; the recovered colour should be the subject's again.
    half = (matte.alpha > 90) & (matte.alpha < 165) & (shot.alpha > 0.3) & (shot.alpha < 0.7) & ~shot.glass
    near_subject = cv2.dilate((shot.alpha >= 1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    mixed_error = np.abs(shot.rgb[half].astype(float) - shot.backdrop[half]).mean()
    assert half.sum() > 50 and near_subject[half].all()
    recovered_distance = np.abs(matte.foreground[half].astype(float) - shot.backdrop[half]).mean()
    assert recovered_distance > 1.4 * mixed_error


def test_shading_follows_the_cast_shadow(shot: StudioShot, matte: Matte) -> None:
    assert matte.shading is not None
    backdrop = _distance_from_outline(shot.alpha, inside=False) > 4
    shading = matte.shading / 255.0
    assert np.abs(shading - shot.shadow)[backdrop].mean() < 0.02
    deep = backdrop & (shot.shadow < 0.75)
    unshadowed = backdrop & (shot.shadow > 0.995)
    assert deep.any() and shading[deep].max() < 0.85
    assert (matte.shading[unshadowed] >= 250).mean() > 0.99


def _over_black(shot: StudioShot, matte: Matte) -> np.ndarray:
    """int (H, W, 3): the subject composited over black with its own alpha and colours, no shadow."""
    return compose(shot.rgb, matte, np.zeros_like(shot.rgb), preserve_shadow=False).astype(int)


def test_no_alpha_or_light_line_beside_the_subject_in_its_cast_shadow(shot: StudioShot, matte: Matte) -> None:
    # The bottle and mug stand in a soft cast shadow. A backdrop estimate biased light there (known backdrop only on
    # the far side of the shadow gradient) gave pixels 2-4 px outside the outline alpha ~0.3 with a backdrop-grey
    # colour: a light line around the subject's foot on a dark scene. Measured before the fix: alpha up to 139 and
    # levels up to 123 over black; after: isolated specks of alpha <= 14, levels <= 11.
    out = _over_black(shot, matte)
    outside = _distance_from_outline(shot.alpha, inside=False)
    beyond = outside > 2
    assert (shot.shadow[beyond & (outside < 5)] < 0.8).any(), "the synthetic subject should stand in its shadow"
    assert matte.alpha[beyond].max() <= 20
    assert (matte.alpha[beyond] > 0).sum() <= 20
    assert out[beyond].max() <= 16  # stays black


def test_outline_ring_is_not_lighter_than_subject_and_scene(shot: StudioShot, matte: Matte) -> None:
    # Over black, an honest outline fades from the subject's colour to black; a fringe of backdrop colour shows as
    # ring pixels brighter (in some channel) than the nearest opaque subject pixel. Measured before the fix: up to
    # 94 levels brighter on ~170 pixels; after: none brighter at all.
    out = _over_black(shot, matte)
    outside = _distance_from_outline(shot.alpha, inside=False)
    near_glass = cv2.dilate(shot.glass.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ring = (outside > 0.5) & (outside <= 3.5) & ~near_glass
    _, nearest = cv2.distanceTransformWithLabels(
        (shot.alpha < 1).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    opaque_rows, opaque_cols = np.nonzero(shot.alpha >= 1)
    position = np.zeros((nearest.max() + 1, 2), dtype=int)
    position[nearest[opaque_rows, opaque_cols]] = np.stack([opaque_rows, opaque_cols], axis=1)
    rows, cols = np.nonzero(ring)
    subject_rows, subject_cols = position[nearest[rows, cols]].T
    assert ring.sum() > 500
    excess = out[rows, cols] - out[subject_rows, subject_cols]  # the scene is 0, so max(subject, scene) = subject
    assert excess.max() <= 12


def test_shading_follows_the_shadow_next_to_the_outline(shot: StudioShot, matte: Matte) -> None:
    # The contact zone 1-4 px outside the subject, where the backdrop estimate has known pixels on one side only.
    # Measured before the fix: mean error 0.013, max 0.089; after: 0.009, 0.056.
    assert matte.shading is not None
    outside = _distance_from_outline(shot.alpha, inside=False)
    contact = (outside > 1) & (outside <= 4)
    error = np.abs(matte.shading / 255.0 - shot.shadow)[contact]
    assert error.mean() < 0.011
    assert error.max() < 0.07


def test_subject_touching_the_bottom_border() -> None:
    shot = render_studio_shot(WIDTH, HEIGHT, seed=12, touch_bottom=True)
    result = estimate_matte(shot.rgb)
    assert shot.alpha[-1].max() == 1.0  # the bottle is cut by the bottom edge
    assert np.abs(result.alpha / 255.0 - shot.alpha).mean() < 0.01
    interior = _distance_from_outline(shot.alpha, inside=True) > 4
    assert (result.alpha[interior] == 255).all()


def test_tight_crop_with_a_shadow_along_the_bottom_border() -> None:
    # The subject fills ~45 % of the frame and the cast shadow runs along the whole bottom edge.
    shot = render_studio_shot(1250, 840, seed=15)
    rows, cols = slice(300, 700), slice(380, 860)
    crop, alpha_true = np.ascontiguousarray(shot.rgb[rows, cols]), shot.alpha[rows, cols]
    assert alpha_true.mean() > 0.4
    result = estimate_matte(crop)
    assert np.abs(result.alpha / 255.0 - alpha_true).mean() < 0.01


def test_thin_structure_without_an_opaque_core() -> None:
    shot = render_studio_shot(WIDTH, HEIGHT, seed=16)
    image, alpha_true = shot.rgb.copy(), shot.alpha.copy()
    image[40:300, 560:563] = (30, 30, 30)  # a 3 px dark string: all of it lies in the unknown band
    alpha_true[40:300, 560:563] = 1.0
    result = estimate_matte(image)
    assert result.alpha[40:300, 560:563].mean() > 0.9 * 255
    assert np.abs(result.alpha / 255.0 - alpha_true).mean() < 0.01


def test_plain_backdrop_without_subject_is_refused() -> None:
    shot = render_studio_shot(WIDTH, HEIGHT, seed=13)
    backdrop_only = np.clip(shot.backdrop + np.random.default_rng(0).normal(0, 2, shot.backdrop.shape), 0, 255)
    with pytest.raises(SubjectNotFound, match="no subject"):
        estimate_matte(backdrop_only.astype(np.uint8))


def test_busy_image_is_refused() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    with pytest.raises(SubjectNotFound, match="not plain enough"):
        estimate_matte(noise)


def test_bad_inputs() -> None:
    with pytest.raises(InvalidRequest, match="matting engine"):
        estimate_matte(np.zeros((64, 64, 3), np.uint8), engine="nope")
    with pytest.raises(ValueError, match="uint8"):
        StudioMatting().estimate(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InvalidRequest, match="at least 32"):
        StudioMatting().estimate(np.zeros((16, 64, 3), np.uint8))


def test_deterministic(shot: StudioShot, matte: Matte) -> None:
    again = estimate_matte(shot.rgb)
    np.testing.assert_array_equal(again.alpha, matte.alpha)
    np.testing.assert_array_equal(again.foreground, matte.foreground)


def test_one_megapixel_timing_is_reported() -> None:
    shot = render_studio_shot(1250, 840, seed=14)
    start = time.perf_counter()
    result = estimate_matte(shot.rgb)
    elapsed_ms = (time.perf_counter() - start) * 1000
    error = np.abs(result.alpha / 255.0 - shot.alpha)
    edge = (shot.alpha > 0) & (shot.alpha < 1) & ~shot.glass
    print(
        f"studio matting 1250x840: {elapsed_ms:.0f} ms, alpha MAE {error.mean():.4f}, "
        f"outline MAE {error[edge].mean():.3f}, translucent-part MAE {error[shot.glass].mean():.3f}"
    )


def test_small_image_soft_shadow_is_backdrop_and_product_stays_opaque() -> None:
    # At 0.25 MP the penumbra is twice as steep per px as at 1 MP; the edge test must not wall it off as subject.
    sample = generate_sample("soft_shadow", 1, 0.25, seed=2)
    assert sample.backdrop == "studio"
    alpha = StudioMatting().estimate(sample.image).alpha
    kept_backdrop = np.count_nonzero(alpha[sample.alpha == 0] > 0)
    interior = cv2.erode((sample.alpha == 1).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert kept_backdrop < 1000  # 2111 when the edge threshold did not grow below 1 MP
    assert np.count_nonzero(alpha[interior] < 255) < 100


def test_glass_body_enclosed_by_its_rim_gets_fractional_alpha() -> None:
    sample = generate_sample("glass", 1, 0.25, seed=2)
    assert sample.backdrop == "gradient"
    alpha = StudioMatting().estimate(sample.image).alpha.astype(np.float32) / 255.0
    body = (sample.alpha > 0.1) & (sample.alpha < 0.3)
    # Without the translucent step the body was opaque (median 1.0, error 0.8 per pixel).
    assert 0.1 < np.median(alpha[body]) < 0.45
    assert np.mean(np.abs(alpha[body] - sample.alpha[body])) < 0.3  # 0.20 now


def test_pale_textured_part_enclosed_by_darker_subject_stays_opaque() -> None:
    # The white strap on the astronaut's suit is near the sweep's colour and framed by the denser red suit: without
    # the texture cue it became see-through (6102 interior pixels below 128 instead of 3806, the porous hair's).
    sample = generate_sample("hair", 0, 0.25, seed=1)
    assert sample.backdrop == "studio"
    alpha = StudioMatting().estimate(sample.image).alpha
    interior = cv2.erode((sample.alpha == 1).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.count_nonzero(alpha[interior] < 128) < 4500


def test_pale_flat_print_inside_a_darker_subject_of_another_colour_stays_opaque() -> None:
    # A pale blue letter on a navy app icon is faint, flat and enclosed by a denser part, like a glass body, but its
    # colour is not between the backdrop's and the navy's: without that cue the letter came out at alpha 66/255.
    rows = np.arange(408, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(np.array([232.0, 230.0, 228.0]) - rows / 40.8, (408, 612, 3)).copy()
    image[100:320, 200:420] = (20, 30, 70)
    image[150:270, 250:370] = (150, 200, 240)
    image += np.random.default_rng(0).normal(0, 1.5, image.shape)
    alpha = StudioMatting().estimate(np.clip(image, 0, 255).astype(np.uint8)).alpha
    assert np.count_nonzero(alpha[160:260, 260:360] < 255) == 0
