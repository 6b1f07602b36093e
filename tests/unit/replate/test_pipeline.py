"""The replace pipeline's generated-scene step: what it asks a scene generator for and what it does with the
answer. The generator here paints plain plates of known colours; the real one (scene_diffusion) is tested in
tests/unit/replate/test_diffusion_*.py and, end to end, in tests/integration/test_diffusion_scenes.py."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

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
