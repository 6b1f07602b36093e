"""The replace pipeline's generated-scene step: what it asks a scene generator for and what it does with the
answer. The generator here paints plain plates of known colours; the real one (scene_diffusion) is tested in
tests/unit/replate/test_diffusion_*.py and, end to end, in tests/integration/test_diffusion_scenes.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from replate.errors import InvalidRequest
from replate.imageio import encode_image
from replate.matting import Matte
from replate.pipeline import ReplaceOptions, SceneJob, ScenePlates, replace_background

WIDTH, HEIGHT = 96, 64


def cutout_png() -> tuple[np.ndarray, bytes]:
    """An RGBA input that carries its own matte (so no matting runs): left half opaque, right half transparent."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[:, : WIDTH // 2, 3], rgba[:, WIDTH // 2 :, 3] = 255, 0
    return rgba, encode_image(rgba, "png")


def no_matting(_image: np.ndarray) -> Matte:
    raise AssertionError("an input with its own alpha needs no matting")


def test_a_prompted_scene_is_asked_of_the_generator_and_composed_bit_exact() -> None:
    rgba, png = cutout_png()
    jobs: list[SceneJob] = []

    def generate(job: SceneJob) -> ScenePlates:
        jobs.append(job)
        plates = [np.full((HEIGHT, WIDTH, 3), 40 * (index + 1), np.uint8) for index in range(2)]
        return ScenePlates(plates=plates, info={"engine": "diffusion-test", "notes": ["a note"], "unet_calls": 40})

    options = ReplaceOptions(scene_prompt="a beach", seed=9, num_outputs=2, guidance_scale=3.0, mode="fast")
    result = replace_background(png, options, no_matting, generate_scenes=generate)
    (job,) = jobs
    assert job.params == {"prompt": "a beach", "seed": 9, "num_outputs": 2, "guidance_scale": 3.0, "mode": "fast"}
    assert np.array_equal(job.alpha, rgba[:, :, 3]) and np.array_equal(job.image, rgba[:, :, :3])
    assert job.reference is None
    assert result.info["engines"]["scene"] == "diffusion-test" and result.info["notes"] == ["a note"]
    assert result.info["generation"] == {"unet_calls": 40}
    for index, encoded in enumerate(result.images):
        composite = np.asarray(Image.open(io.BytesIO(encoded)))
        assert np.array_equal(composite[:, : WIDTH // 2], rgba[:, : WIDTH // 2, :3])
        assert (composite[:, WIDTH // 2 :] == 40 * (index + 1)).all()


def test_colours_are_drawn_even_with_a_generator_and_prompts_without_one() -> None:
    _rgba, png = cutout_png()

    def generate(job: SceneJob) -> ScenePlates:
        raise AssertionError("a colour scene needs no generator")

    coloured = replace_background(png, ReplaceOptions(bg_color="#102030"), no_matting, generate_scenes=generate)
    assert coloured.info["engines"]["scene"] == "color"
    drawn = replace_background(png, ReplaceOptions(scene_prompt="a beach", guidance_scale=3.0), no_matting)
    assert drawn.info["engines"]["scene"] == "studio"
    assert any("no diffusion build is loaded" in note for note in drawn.info["notes"])


def standing_cutout_png() -> tuple[np.ndarray, bytes]:
    """An RGBA input whose opaque block stands in the frame (rows 16-47), so it has a base to shade."""
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[:, :, 3] = 0
    rgba[16:48, 32:64, 3] = 255
    return rgba, encode_image(rgba, "png")


def test_harmonisation_and_shadows_are_reported_per_output_and_keep_nothing_else() -> None:
    rgba, png = standing_cutout_png()
    options = ReplaceOptions(scene_prompt="grey studio, light from the left", num_outputs=2, harmonize=0.5)
    result = replace_background(png, options, no_matting)
    assert result.info["engines"] == {"matting": "input-alpha", "scene": "studio", "harmonize": "classical"}
    assert [entry["shadow"] for entry in result.info["lighting"]] == ["contact", "contact"]
    assert all(entry["harmonize"] == 0.5 for entry in result.info["lighting"])
    assert {"harmonize", "compose", "encode"} <= set(result.info["timings_ms"])
    composite = np.asarray(Image.open(io.BytesIO(result.images[0])))
    assert not np.array_equal(composite[16:48, 32:64], rgba[16:48, 32:64, :3]), "harmonised, not pasted"


def test_harmonize_zero_keeps_the_subject_bit_exact_with_the_default_studio_shadow() -> None:
    rgba, png = standing_cutout_png()
    result = replace_background(png, ReplaceOptions(scene_prompt="grey studio"), no_matting)
    composite = np.asarray(Image.open(io.BytesIO(result.images[0])))
    assert np.array_equal(composite[16:48, 32:64], rgba[16:48, 32:64, :3])
    assert result.info["lighting"][0]["shadow"] == "contact" and "harmonize" not in result.info["engines"]
    plain = replace_background(png, ReplaceOptions(bg_color="#808080"), no_matting)
    assert "lighting" not in plain.info, "a colour scene with harmonize 0 estimates nothing"


def test_generated_scenes_are_harmonised_too() -> None:
    _rgba, png = standing_cutout_png()

    def generate(job: SceneJob) -> ScenePlates:
        return ScenePlates(plates=[np.full((HEIGHT, WIDTH, 3), (90, 110, 160), np.uint8)], info={"engine": "diff"})

    options = ReplaceOptions(scene_prompt="a lake", harmonize=1.0, shadow="cast")
    result = replace_background(png, options, no_matting, generate_scenes=generate)
    assert result.info["engines"]["harmonize"] == "classical"
    assert result.info["lighting"][0]["shadow"] == "cast"


def test_placement_options_are_checked_with_the_others() -> None:
    with pytest.raises(InvalidRequest, match="harmonize"):
        ReplaceOptions(bg_color="#fff", harmonize=1.5)
    with pytest.raises(InvalidRequest, match="shadow"):
        ReplaceOptions(bg_color="#fff", shadow="drop")
