"""Harmonisation, light direction and synthesised shadows (replate/harmonize), on synthetic scenes whose light is
known, and the acceptance of the harmonisation benchmark's generated set."""

from __future__ import annotations

import numpy as np
import pytest

from replate.compose import compose
from replate.errors import InvalidRequest
from replate.harmonize import Placement, default_shadow, place_subject
from replate.harmonize.color import MAX_CHROMA_SHIFT, MAX_PROTECTED_CHROMA_SHIFT, colour_stats, match_colours, to_lab
from replate.harmonize.light import estimate_scene_light, estimate_subject_light, relief_from_alpha
from replate.harmonize.shadow import synthesize_shadow
from replate.matting import Matte
from replate.scene import SceneSpec, make_scene

WIDTH, HEIGHT = 480, 320
BASE_ROW = 250  # the subject stands on this row


def cutout(base_row: int = BASE_ROW, seed: int = 0) -> tuple[np.ndarray, Matte]:
    """A textured upright ellipse standing on base_row with an anti-aliased edge: (image, its exact matte)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32) + 0.5
    radius = np.sqrt(((x - WIDTH / 2) / 60.0) ** 2 + ((y - (base_row - 90)) / 90.0) ** 2)
    alpha = np.clip((1.0 - radius) * 60.0 + 0.5, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(140, 25, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    alpha8 = np.rint(alpha * 255).astype(np.uint8)
    return image, Matte(alpha=alpha8, foreground=image, shading=None, engine="test")


def plate_lit_from(side: int) -> np.ndarray:
    """A grey plate brighter towards side (-1 left, +1 right), darker floor below BASE_ROW - 40."""
    x = np.linspace(-1.0, 1.0, WIDTH, dtype=np.float32)[None, :]
    level = 150.0 * (1.0 + 0.3 * side * x) * np.ones((HEIGHT, 1), np.float32)
    level[BASE_ROW - 40 :] *= 0.85
    return np.repeat(np.clip(level, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def darkness(layer: np.ndarray) -> np.ndarray:
    return 1.0 - layer.astype(np.float64) / 255.0


# ---------------------------------------------------------------- harmonize 0 is bit-exact


@pytest.mark.parametrize("shadow", ["contact", "cast"])
def test_harmonize_zero_with_a_shadow_keeps_opaque_pixels_and_only_darkens_the_scene(shadow: str) -> None:
    image, matte = cutout()
    scene = plate_lit_from(-1)
    placed = place_subject(image, matte, scene, Placement(harmonize=0.0, shadow=shadow), "studio")
    plain = compose(image, matte, scene)
    opaque, clear = matte.alpha == 255, matte.alpha == 0
    assert opaque.sum() > 10_000
    np.testing.assert_array_equal(placed.rgb[opaque], image[opaque])
    assert (placed.rgb[clear] <= plain[clear]).all(), "a shadow may only darken the scene"
    assert (placed.rgb[clear].astype(int).sum(axis=1) < plain[clear].astype(int).sum(axis=1)).sum() > 500
    assert placed.lighting is not None and placed.lighting["shadow"] == shadow


def test_harmonize_zero_without_a_shadow_is_compose_and_estimates_nothing() -> None:
    image, matte = cutout()
    scene = plate_lit_from(1)
    placed = place_subject(image, matte, scene, Placement(harmonize=0.0, shadow="none"), "studio")
    np.testing.assert_array_equal(placed.rgb, compose(image, matte, scene))
    assert placed.lighting is None and set(placed.timings_ms) == {"compose"}


def test_shadow_defaults_follow_the_scene_engine() -> None:
    assert default_shadow("studio") == "contact"
    assert [default_shadow(name) for name in ("color", "reference", "diffusion-sd")] == ["none"] * 3
    image, matte = cutout()
    colour = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    assert place_subject(image, matte, colour, Placement(), "color").lighting is None
    assert place_subject(image, matte, colour, Placement(), "studio").lighting["shadow"] == "contact"


@pytest.mark.parametrize(("harmonize", "shadow"), [(2.0, None), (-0.1, None), (0.5, "soft")])
def test_placement_refuses_out_of_range_options(harmonize: float, shadow: str | None) -> None:
    with pytest.raises(InvalidRequest):
        Placement(harmonize=harmonize, shadow=shadow)


# ---------------------------------------------------------------- light direction


@pytest.mark.parametrize(("side", "azimuth"), [(-1, 180.0), (1, 0.0)])
def test_the_light_of_a_plate_comes_from_its_brighter_side(side: int, azimuth: float) -> None:
    light = estimate_scene_light(plate_lit_from(side))
    assert abs((light.azimuth_deg - azimuth + 180) % 360 - 180) < 35
    assert light.strength > 0.3


def test_a_flat_plate_has_no_direction() -> None:
    assert estimate_scene_light(np.full((HEIGHT, WIDTH, 3), 128, np.uint8)).strength == 0.0


@pytest.mark.parametrize("side", [-1, 1])
def test_the_studio_engine_lit_from_one_side_is_estimated_from_that_side(side: int) -> None:
    prompt = "grey studio, light from the " + ("left" if side < 0 else "right")
    light = estimate_scene_light(make_scene(SceneSpec(prompt=prompt, seed=2), WIDTH, HEIGHT).rgb)
    assert np.sign(light.x) == side


@pytest.mark.parametrize("side", [-1, 1])
def test_the_light_on_a_shaded_subject_comes_from_its_lit_side(side: int) -> None:
    _image, matte = cutout()
    relief = relief_from_alpha(matte.alpha)
    shade = np.clip(160.0 + 60.0 * side * np.linspace(-1, 1, WIDTH)[None, :], 0, 255)
    lit = np.repeat(np.broadcast_to(shade, (HEIGHT, WIDTH))[:, :, None], 3, axis=2).astype(np.uint8)
    light = estimate_subject_light(lit, relief)
    assert np.sign(light.x) == side and light.strength > 0.1


# ---------------------------------------------------------------- shadows


@pytest.mark.parametrize("side", [-1, 1])
def test_contact_shadow_lies_opposite_the_light_fades_and_spares_the_subject(side: int) -> None:
    image, matte = cutout()
    scene = make_scene(
        SceneSpec(prompt="grey studio, light from the " + ("left" if side < 0 else "right")), WIDTH, HEIGHT
    )
    placed = place_subject(image, matte, scene.rgb, Placement(shadow="contact", preserve_shadow=False), "studio")
    light = estimate_scene_light(scene.rgb)
    layer = synthesize_shadow(matte.alpha, light, "contact")
    assert layer is not None
    dark = darkness(layer)
    dark[matte.alpha > 0] = 0.0  # what the floor shows
    columns = np.arange(WIDTH)
    centroid = float((dark.sum(axis=0) * columns).sum() / dark.sum())
    assert np.sign(centroid - WIDTH / 2) == -side, "the shadow falls away from the light"
    below = dark[BASE_ROW + 1 : BASE_ROW + 40, WIDTH // 2]
    assert below[0] > 0.2 and below[-1] < 0.02 and (np.diff(below) <= 1e-9).all(), "it fades with distance"
    floor_row = dark[BASE_ROW + 2]
    away = floor_row[WIDTH // 2 :: -side][60:200]  # from the footprint's edge outwards, on the far side
    assert (np.diff(away) <= 1e-9).all() and away[-1] < 0.02
    opaque = matte.alpha == 255
    np.testing.assert_array_equal(placed.rgb[opaque], image[opaque])


def test_cast_shadow_lies_behind_the_subject_and_away_from_the_light() -> None:
    _image, matte = cutout()
    light = estimate_scene_light(plate_lit_from(-1))
    layer = synthesize_shadow(matte.alpha, light, "cast")
    assert layer is not None
    dark = darkness(layer)
    dark[matte.alpha > 0] = 0.0
    behind = dark[: BASE_ROW - 5]
    assert behind.max() > 0.1, "the silhouette is laid on the floor behind the feet"
    rows, cols = np.nonzero(behind > 0.05)
    assert cols.mean() > WIDTH / 2 + 20, "leaning right, away from a light on the left"
    assert rows.min() > BASE_ROW - 180 * 0.35 - 20, "squashed onto the floor"


def test_no_contact_shadow_for_a_subject_cut_by_the_bottom_edge() -> None:
    image, matte = cutout(base_row=HEIGHT + 60)
    assert synthesize_shadow(matte.alpha, estimate_scene_light(plate_lit_from(1)), "contact") is None
    placed = place_subject(image, matte, plate_lit_from(1), Placement(shadow="contact"), "studio")
    assert placed.lighting["shadow"] == "none"
    assert any("runs off the bottom" in note for note in placed.notes)


def test_the_photos_own_shadow_is_carried_instead_of_a_synthesised_one() -> None:
    image, matte = cutout()
    own = np.full(matte.alpha.shape, 255, np.uint8)
    own[BASE_ROW : BASE_ROW + 20, 100:200] = 120
    shadowed = Matte(alpha=matte.alpha, foreground=image, shading=own, engine="test")
    scene = plate_lit_from(1)
    placed = place_subject(image, shadowed, scene, Placement(shadow="cast"), "studio")
    np.testing.assert_array_equal(placed.rgb, compose(image, shadowed, scene, preserve_shadow=True))
    assert placed.lighting["shadow"] == "carried" and "preserve_shadow=false" in placed.notes[0]


def test_a_shadow_never_changes_the_harmonised_subject() -> None:
    image, matte = cutout()
    scene = plate_lit_from(-1)
    with_shadow = place_subject(image, matte, scene, Placement(harmonize=0.5, shadow="cast"), "studio")
    without = place_subject(image, matte, scene, Placement(harmonize=0.5, shadow="none"), "studio")
    opaque = matte.alpha == 255
    np.testing.assert_array_equal(with_shadow.rgb[opaque], without.rgb[opaque])


# ---------------------------------------------------------------- colour


def test_a_warm_subject_on_a_cool_scene_is_cooled_within_the_bounds() -> None:
    _image, matte = cutout()
    warm = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    warm[:] = (200, 160, 110)  # a grey object under a warm light
    cool = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    cool[:] = (150, 165, 200)
    subject, scene = colour_stats(warm, matte.alpha >= 230), colour_stats(cool)
    assert subject is not None and scene is not None
    moved = match_colours(warm, matte.alpha, subject, scene, 1.0)
    before, after = to_lab(warm[matte.alpha == 255]), to_lab(moved[matte.alpha == 255])
    assert (after[:, 2] < before[:, 2] - 3).all(), "b* goes towards blue"
    assert (np.hypot(*(after - before)[:, 1:].T) <= MAX_CHROMA_SHIFT + 0.5).all()
    np.testing.assert_array_equal(moved[matte.alpha == 0], warm[matte.alpha == 0])
    half = match_colours(warm, matte.alpha, subject, scene, 0.5)
    midway = to_lab(half[matte.alpha == 255])[:, 2]
    assert (np.abs(midway - (before[:, 2] + after[:, 2]) / 2) < 1.0).all(), "strength blends the change"


def test_saturated_brand_colours_and_skin_move_less() -> None:
    _image, matte = cutout()
    cool = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    cool[:] = (120, 150, 220)
    scene = colour_stats(cool)
    for colour in [(220, 30, 40), (224, 172, 138)]:  # a brand red, a skin tone
        subject_rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        subject_rgb[:] = colour
        subject = colour_stats(subject_rgb, matte.alpha >= 230)
        moved = match_colours(subject_rgb, matte.alpha, subject, scene, 1.0)
        before, after = to_lab(subject_rgb[matte.alpha == 255]), to_lab(moved[matte.alpha == 255])
        assert (np.hypot(*(after - before)[:, 1:].T) <= MAX_PROTECTED_CHROMA_SHIFT + 0.5).all(), colour
