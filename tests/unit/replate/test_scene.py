from __future__ import annotations

import cv2
import numpy as np
import pytest

from replate import scene
from replate.errors import ConflictingSceneSources, InvalidRequest
from replate.scene import ENGINES, SceneSpec, make_scene
from replate.scene.color import parse_color
from replate.scene.reference import cover_crop
from tests.unit.replate.synthetic import gradient_rgb


def test_public_surface_and_registry() -> None:
    assert set(scene.__all__) == {"ENGINES", "Scene", "SceneEngine", "SceneSpec", "check_scene_sources", "make_scene"}
    assert {name: engine.name for name, engine in ENGINES.items()} == {
        "color": "color",
        "reference": "reference",
        "studio": "studio",
    }


@pytest.mark.parametrize(
    ("spec", "engine"),
    [
        (SceneSpec(color="#102030"), "color"),
        (SceneSpec(reference=gradient_rgb(50, 40)), "reference"),
        (SceneSpec(prompt="white marble, soft light"), "studio"),
    ],
)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 3), (320, 241)])
def test_sizes_are_exact(spec: SceneSpec, engine: str, width: int, height: int) -> None:
    result = make_scene(spec, width, height)
    assert result.engine == engine
    assert result.rgb.dtype == np.uint8 and result.rgb.shape == (height, width, 3)


@pytest.mark.parametrize(
    ("text", "rgb"),
    [("#ffffff", (255, 255, 255)), ("#F0A", (255, 0, 170)), ("teal", (0, 128, 128)), (" Red ", (255, 0, 0))],
)
def test_colour_parsing(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_color(text) == rgb
    result = make_scene(SceneSpec(color=text), 4, 2)
    assert (result.rgb == rgb).all()


@pytest.mark.parametrize("text", ["#ggg", "#12345", "#ffffff80", "blueish", "rgb(1,2,3)", ""])
def test_bad_colours_name_the_field(text: str) -> None:
    with pytest.raises(InvalidRequest, match="bg_color"):
        make_scene(SceneSpec(color=text), 4, 4)


def test_a_source_is_required() -> None:
    for spec in (SceneSpec(), SceneSpec(prompt="   ")):
        with pytest.raises(InvalidRequest, match="at least one of scene_prompt, scene_image_url, bg_color"):
            make_scene(spec, 4, 4)


@pytest.mark.parametrize(
    "spec", [SceneSpec(color="white", prompt="a beach"), SceneSpec(color="white", reference=gradient_rgb(4, 4))]
)
def test_colour_conflicts_with_other_sources(spec: SceneSpec) -> None:
    with pytest.raises(ConflictingSceneSources):
        make_scene(spec, 4, 4)


def test_prompt_with_reference_uses_the_reference_and_says_so() -> None:
    reference = gradient_rgb(64, 48)
    result = make_scene(SceneSpec(prompt="sunset", reference=reference), 64, 48)
    assert result.engine == "reference"
    np.testing.assert_array_equal(result.rgb, reference)
    assert any("diffusion" in note for note in result.notes)
    assert make_scene(SceneSpec(reference=reference), 64, 48).notes == ()


def test_cover_crop_keeps_the_centre_of_a_wider_photo() -> None:
    photo = gradient_rgb(200, 100)  # red channel encodes x
    cropped = cover_crop(photo, 100, 100)
    np.testing.assert_array_equal(cropped, photo[:, 50:150])


def test_cover_crop_scales_up_to_cover_and_crops_rows() -> None:
    photo = gradient_rgb(200, 100)
    cropped = cover_crop(photo, 400, 100)  # scale 2 -> 400x200, rows 50..150 kept
    assert cropped.shape == (100, 400, 3)
    full = cv2.resize(photo, (400, 200), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(cropped, full[50:150])
    assert cropped[0, :, 1].mean() == pytest.approx(255 * 0.25, abs=4)  # green encodes the source row


def test_cover_crop_shrinks_with_area_averaging() -> None:
    checker = (np.indices((400, 600)).sum(axis=0) % 2 * 255).astype(np.uint8)
    photo = np.repeat(checker[:, :, None], 3, axis=2)
    cropped = cover_crop(photo, 60, 30)  # scale 0.1: area averaging gives flat grey, not aliasing
    assert cropped.shape == (30, 60, 3)
    assert np.abs(cropped.astype(int) - 128).max() <= 2


def test_studio_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    spec = SceneSpec(prompt="warm wood kitchen", seed=7)
    first = make_scene(spec, 300, 200)
    np.testing.assert_array_equal(first.rgb, make_scene(spec, 300, 200).rgb)
    other = make_scene(SceneSpec(prompt="warm wood kitchen", seed=8), 300, 200)
    difference = np.abs(first.rgb.astype(int) - other.rgb)
    assert difference.mean() > 0.5  # grain and light placement move
    assert difference.mean() < 20  # but it is the same set


def test_studio_follows_colour_material_and_light_words() -> None:
    red = make_scene(SceneSpec(prompt="a red backdrop"), 120, 80).rgb.reshape(-1, 3).mean(axis=0)
    assert red[0] > 2 * red[1] and red[0] > 2 * red[2]
    dark = make_scene(SceneSpec(prompt="moody dark studio"), 120, 80).rgb.mean()
    bright = make_scene(SceneSpec(prompt="bright studio"), 120, 80).rgb.mean()
    assert dark < 0.7 * bright
    warm = make_scene(SceneSpec(prompt="warm studio"), 120, 80).rgb.reshape(-1, 3).mean(axis=0)
    cool = make_scene(SceneSpec(prompt="cool studio"), 120, 80).rgb.reshape(-1, 3).mean(axis=0)
    assert warm[0] - warm[2] > cool[0] - cool[2] + 20
    two_words = make_scene(SceneSpec(prompt="light blue"), 40, 40)
    assert "light blue" in two_words.notes[0]


def test_studio_notes_are_honest() -> None:
    recognised = make_scene(SceneSpec(prompt="marble countertop at sunset"), 40, 40)
    assert "marble" in recognised.notes[0] and "sunset" in recognised.notes[0]
    assert "countertop" not in recognised.notes[0]
    unknown = make_scene(SceneSpec(prompt="a photo of something"), 40, 40)
    assert "no colour, material or light words" in unknown.notes[0]


def test_studio_backdrop_is_smooth_not_noise() -> None:
    plate = make_scene(SceneSpec(prompt="grey concrete", seed=3), 400, 300).rgb.astype(np.float32)
    fine_detail = np.abs(cv2.Laplacian(plate, cv2.CV_32F)).mean()
    assert fine_detail < 8  # film grain only; structure is low-frequency
    row_means = plate.mean(axis=(1, 2))
    assert np.abs(np.diff(row_means)).max() < 6  # no hard horizon line


# Prompts whose colour words must come out as a photographic backdrop; the CSS value is a display primary.
COLOUR_PROMPTS = ["deep blue moody studio", "red", "blue", "lime", "yellow", "magenta", "teal", "black", "white"]
OTHER_PROMPTS = [
    "white marble",
    "modern kitchen counter with morning light",
    "sunset beach",
    "green forest",
    "navy night",
    "purple velvet",
    "bright studio",
    "dark studio",
    "neon",
    "a photo of something",
]


def _hsv(rgb: np.ndarray) -> np.ndarray:
    """float (H, W, 3): hue in degrees [0, 360), saturation and value in [0, 1]."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(float)
    return hsv * np.array([360.0 / 256.0, 1 / 255.0, 1 / 255.0])


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114])


@pytest.mark.parametrize("prompt", COLOUR_PROMPTS)
def test_colour_words_give_a_paper_backdrop_not_a_display_primary(prompt: str) -> None:
    # Before: every primary had saturation 1.0 ("deep blue moody" a flat (0, 0, 158)), "black" was pitch black and
    # "white" clipped at 255.
    hsv = _hsv(make_scene(SceneSpec(prompt=prompt, seed=3), 240, 160).rgb)
    saturation, value = hsv[:, :, 1], hsv[:, :, 2]
    assert np.percentile(saturation, 99) <= 0.8
    assert value.mean() >= 0.12  # black is a charcoal paper, not a hole
    assert np.percentile(value, 99.9) <= 0.97  # white rolls off instead of clipping


@pytest.mark.parametrize(("prompt", "hue"), [("red", 0), ("yellow", 60), ("lime", 120), ("teal", 180), ("blue", 225)])
def test_colour_words_keep_their_hue(prompt: str, hue: float) -> None:
    rgb = make_scene(SceneSpec(prompt=prompt, seed=3), 240, 160).rgb
    wall = rgb[30:80].reshape(-1, 3).mean(axis=0).astype(np.uint8)
    measured = _hsv(wall[None, None, :])[0, 0, 0]
    assert abs((measured - hue + 180) % 360 - 180) < 20


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("prompt", COLOUR_PROMPTS + OTHER_PROMPTS)
def test_floor_and_horizon_stay_visible(prompt: str, seed: int) -> None:
    # The horizon is drawn at 59-65 % of the height; bands well above and below it must differ visibly.
    # Before: "deep blue moody studio" differed by 4 levels, "black" by 0, "sunset beach" by 8 %.
    luminance = _luminance(make_scene(SceneSpec(prompt=prompt, seed=seed), 240, 160).rgb)
    wall, floor = luminance[70:83].mean(), luminance[115:128].mean()
    assert abs(wall - floor) >= 12
    assert abs(wall - floor) >= 0.15 * max(wall, floor)


def test_light_words_grade_the_colour() -> None:
    def render(prompt: str) -> np.ndarray:
        return make_scene(SceneSpec(prompt=prompt, seed=3), 240, 160).rgb

    plain, moody, bright = (
        render("deep blue studio"),
        render("deep blue moody studio"),
        render("deep blue bright studio"),
    )
    assert _luminance(moody).mean() < 0.8 * _luminance(plain).mean() < 0.8 * _luminance(bright).mean()
    for graded in (moody, bright):  # still the same blue
        wall = graded[30:80].reshape(-1, 3).mean(axis=0).astype(np.uint8)
        assert abs(_hsv(wall[None, None, :])[0, 0, 0] - 225) < 20
    # Low key: a pool of light behind the subject, falling off into a dark vignette.
    luminance = _luminance(moody)
    pool, corners = luminance[50:100, 90:150].mean(), np.mean([luminance[:16, :16].mean(), luminance[:16, -16:].mean()])
    assert pool > 2 * corners
    # Morning light: lighter and warmer than the neutral sweep.
    neutral, morning = render("studio").astype(float), render("studio in the morning").astype(float)
    assert _luminance(morning).mean() > _luminance(neutral).mean()
    assert (morning[:, :, 0] - morning[:, :, 2]).mean() > (neutral[:, :, 0] - neutral[:, :, 2]).mean() + 8
