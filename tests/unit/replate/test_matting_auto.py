"""The learned engine, the auto policy and the engine factory, with a tiny random ONNX segmenter or a segment
seam; the real U²-Net only in the slow test (weights from `replate models pull`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from export.matting import TinySegmenter, export_segmenter
from replate import matting
from replate.errors import InvalidRequest, SubjectNotFound, Unavailable
from replate.matting import (
    AutoMatting,
    Matte,
    SegmenterMatting,
    StudioMatting,
    create_engine,
    estimate_matte,
    estimate_mattes,
)
from replate.matting.auto import PLAIN_BORDER, segmenter_core
from replate.matting.studio import StudioBackdrop, border_plainness
from replate.models import ModelMissing
from tests.unit.replate.synthetic import StudioShot, render_studio_shot

WIDTH, HEIGHT = 640, 430
USER_MODELS = Path.home() / ".cache" / "replate" / "models"


@pytest.fixture(scope="module")
def shot() -> StudioShot:
    return render_studio_shot(WIDTH, HEIGHT, seed=11)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder whose u2netp.onnx is a tiny random segmenter (right IO, meaningless weights)."""
    folder = tmp_path_factory.mktemp("models")
    export_segmenter(TinySegmenter(), folder / "u2netp.onnx")
    return folder


def busy_photo(seed: int = 0) -> np.ndarray:
    """uint8 (300, 400, 3): a bright disc on a backdrop far too busy for the studio model."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    cv2.circle(image, (200, 150), 90, (250, 240, 40), -1)
    return image


def oracle_segment(alpha: np.ndarray):
    """A segment seam returning the true alpha at 320 x 320 (as logits), standing in for a perfect segmenter."""

    def segment(batch: np.ndarray) -> np.ndarray:
        small = cv2.resize(alpha, (320, 320), interpolation=cv2.INTER_AREA)
        return np.repeat(small[np.newaxis], len(batch), axis=0).astype(np.float32)

    return segment


def check_contract(image: np.ndarray, matte: Matte) -> None:
    assert matte.alpha.dtype == np.uint8 and matte.alpha.shape == image.shape[:2]
    assert matte.foreground.dtype == np.uint8 and matte.foreground.shape == image.shape
    opaque = matte.alpha == 255
    np.testing.assert_array_equal(matte.foreground[opaque], image[opaque])


def test_public_surface() -> None:
    assert set(matting.ENGINE_NAMES) == {"auto", "studio", "u2net", "u2netp"}
    assert {"create_engine", "estimate_matte", "AutoMatting", "SegmenterMatting", "OnnxSegmenter"} <= set(
        matting.__all__
    )


def test_learned_engine_with_a_real_onnx_session(models_dir: Path) -> None:
    engine = create_engine("u2netp", models_dir=models_dir)
    assert isinstance(engine, SegmenterMatting) and engine.name == "u2netp+refine"
    image = busy_photo()
    matte = engine.estimate(image)
    check_contract(image, matte)
    assert matte.engine == "u2netp+refine"
    assert matte.shading is None  # no backdrop the studio model fits
    assert {"segment", "refine", "total"} <= set(matte.timings_ms)


def test_learned_engine_with_a_perfect_mask_recovers_the_true_alpha(shot: StudioShot) -> None:
    engine = SegmenterMatting(oracle_segment(shot.alpha), "oracle")
    matte = engine.estimate(shot.rgb)
    check_contract(shot.rgb, matte)
    error = np.abs(matte.alpha / 255.0 - shot.alpha)
    edge = (shot.alpha > 0) & (shot.alpha < 1) & ~shot.glass
    print(
        f"oracle+refine: MAE {error.mean():.4f}, outline {error[edge].mean():.3f}, glass {error[shot.glass].mean():.3f}"
    )
    assert error.mean() < 0.005  # measured 0.0002
    assert error[edge].mean() < 0.08  # measured 0.037; the glass neck's 0.45 alpha: error 0.007
    assert matte.shading is not None and matte.shading.shape == (HEIGHT, WIDTH)
    shadow = shot.shadow < 0.8
    assert matte.shading[shadow].mean() < 0.9 * 255  # the cast shadow comes through for preserve_shadow


def test_learned_engine_refuses_an_empty_mask() -> None:
    engine = SegmenterMatting(lambda batch: np.zeros((len(batch), 320, 320), np.float32), "empty")
    with pytest.raises(SubjectNotFound):
        engine.estimate(busy_photo())
    with pytest.raises(InvalidRequest, match="at least 32"):
        engine.estimate(np.zeros((16, 64, 3), np.uint8))


def test_auto_uses_studio_on_a_studio_backdrop_and_learned_elsewhere(shot: StudioShot) -> None:
    calls: list[int] = []

    def segment(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return oracle_segment(shot.alpha)(batch)

    auto = create_engine("auto", segment=segment)
    assert isinstance(auto, AutoMatting) and auto.name == "auto"
    studio_matte = auto.estimate(shot.rgb)
    assert studio_matte.engine == "studio" and calls == [1]  # the segmenter is consulted, and agrees
    busy = busy_photo()
    learned_matte = AutoMatting(StudioMatting(), SegmenterMatting(oracle_segment(_disc_alpha()), "u2netp")).estimate(
        busy
    )
    assert learned_matte.engine == "u2netp+refine"
    check_contract(busy, learned_matte)


def test_auto_falls_back_to_learned_when_studio_finds_no_subject(shot: StudioShot) -> None:
    backdrop_only = np.clip(shot.backdrop + np.random.default_rng(0).normal(0, 2, shot.backdrop.shape), 0, 255)
    image = backdrop_only.astype(np.uint8)
    learned = SegmenterMatting(oracle_segment(shot.alpha), "u2netp")
    assert AutoMatting(StudioMatting(), learned).estimate(image).engine == "u2netp+refine"


def test_auto_distrusts_a_studio_cut_that_drops_the_segmenters_subject(shot: StudioShot) -> None:
    """When the studio cut loses most of what the segmenter is sure is subject (here: the segmenter sees a subject
    where the studio engine sees plain backdrop), the segmenter's mask is refined instead."""
    elsewhere = np.zeros_like(shot.alpha)
    elsewhere[: HEIGHT // 3, : WIDTH // 3] = 1.0
    auto = AutoMatting(StudioMatting(), SegmenterMatting(oracle_segment(elsewhere), "u2netp"))
    matte = auto.estimate(shot.rgb)
    assert matte.engine == "u2netp+refine"
    check_contract(shot.rgb, matte)


def test_border_plainness_tells_a_studio_sweep_from_a_texture_and_ignores_local_intrusions() -> None:
    height, width = 300, 450
    ramp = np.linspace(150, 220, width, dtype=np.float32)
    clean = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    model = StudioBackdrop(rgb=clean, noise=1.0)
    uncovered = np.ones((height, width), bool)
    noise = np.random.default_rng(0).normal(0, 1.0, clean.shape)
    plain = np.clip(clean + noise, 0, 255).astype(np.uint8)
    assert border_plainness(plain, model, uncovered) == 1.0
    hairy = plain.copy()
    hairy[-40:, : width // 5] = 30  # dark strands reaching one stretch of the border: local, so ignored
    assert border_plainness(hairy, model, uncovered) == 1.0
    texture = 25.0 * np.sin(np.arange(width)[None, :, None] * 0.9) * np.cos(np.arange(height)[:, None, None] * 0.7)
    brick = np.clip(clean + texture + noise, 0, 255).astype(np.uint8)
    assert border_plainness(brick, model, uncovered) < PLAIN_BORDER
    assert border_plainness(plain, model, np.zeros_like(uncovered)) == 0.0  # nothing uncovered to judge


def test_studio_keeps_shadow_coloured_subject_the_segmenter_is_sure_of(shot: StudioShot) -> None:
    """A grey stripe on the subject looks like a shadow on the backdrop; running down into the subject's soft cast
    shadow, the studio engine alone cuts it out with the shadow, and the segmenter's sure core keeps it."""
    subject = shot.alpha >= 1.0
    rows = np.nonzero(subject)[0]
    middle = int(subject.sum(axis=0).argmax())  # through the tallest part of the subject
    stripe = np.zeros_like(subject)
    stripe[(rows.min() + rows.max()) // 2 :, middle - 20 : middle + 20] = True
    stripe &= subject
    shadow = np.zeros(subject.shape, np.float32)
    cv2.ellipse(shadow, (middle, rows.max() + 10), (120, 30), 0, 0, 360, 1.0, -1)
    shadow = np.maximum(cv2.GaussianBlur(shadow, (0, 0), 12), stripe)
    darkened = shot.backdrop * (1.0 - 0.45 * shadow)[:, :, None]
    image = np.where((stripe | ~subject)[:, :, None], darkened, shot.rgb).astype(np.uint8)
    coarse = cv2.resize(cv2.resize(shot.alpha, (320, 320), interpolation=cv2.INTER_AREA), (WIDTH, HEIGHT))
    core = segmenter_core(coarse)
    grey_subject = stripe & core
    alone = StudioMatting().estimate(image)
    with_prior = StudioMatting().estimate(image, subject_prior=core)
    assert (alone.alpha[grey_subject] >= 128).mean() < 0.5  # the failure the prior is for
    assert (with_prior.alpha[grey_subject] >= 128).mean() > 0.95


def test_studio_opens_a_small_hole_only_where_the_segmenter_sees_backdrop(shot: StudioShot) -> None:
    """A hole too small for the studio engine's hole rule (it keeps small backdrop-coloured patches inside a subject:
    a white label on a white product) opens when the segmenter's mask says backdrop there, and only then."""
    inside = cv2.distanceTransform((shot.alpha >= 1.0).view(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(inside.argmax()), inside.shape)
    hole = np.zeros(shot.alpha.shape, np.uint8)
    cv2.circle(hole, (int(x), int(y)), 5, 1, -1)
    hole = hole.view(bool)
    assert hole.sum() < 0.0005 * hole.size  # under the size the studio engine opens on its own
    image = np.where(hole[:, :, None], np.clip(shot.backdrop, 0, 255), shot.rgb).astype(np.uint8)
    alpha = np.where(hole, 0.0, shot.alpha)
    centre = cv2.erode(hole.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    alone = StudioMatting().estimate(image)
    seen = StudioMatting().estimate(image, backdrop_prior=alpha < 0.5)
    taken_for_subject = StudioMatting().estimate(image, backdrop_prior=shot.alpha < 0.5)
    assert alone.alpha[centre].mean() > 200  # the behaviour the prior corrects
    assert (seen.alpha[centre] == 0).all()
    assert np.array_equal(taken_for_subject.alpha, alone.alpha)
    away = ~cv2.dilate(hole.view(np.uint8), np.ones((9, 9), np.uint8)).view(bool)
    assert np.array_equal(seen.alpha[away], alone.alpha[away])


def test_studio_keeps_a_pale_subject_brighter_than_the_backdrop_where_the_segmenter_sees_it() -> None:
    """A white disc with a soft edge on a light grey sweep looks like the sweep lit a little brighter (a tolerance
    kept for shadows the backdrop model learns along the border): alone, the studio engine gives it to the backdrop;
    where the segmenter's mask says subject, it stays."""
    rng = np.random.default_rng(5)
    height, width = 430, 640
    disc = np.zeros((height, width), np.float32)
    cv2.circle(disc, (220, 200), 60, 1.0, -1)
    disc = cv2.GaussianBlur(disc, (0, 0), 4)  # an edge of ~2 levels per px: no wall against the backdrop
    image = 200.0 + 30.0 * disc[:, :, None] + rng.normal(0.0, 1.0, (height, width, 3))
    image[150:260, 420:520] = (60.0, 40.0, 30.0)  # a dark box, so that a subject is there either way
    image = np.clip(image, 0, 255).astype(np.uint8)
    centre = disc > 0.99
    alone = StudioMatting().estimate(image)
    seen = StudioMatting().estimate(image, backdrop_prior=disc < 0.5)
    assert (alone.alpha[centre] == 0).mean() > 0.9  # the failure the prior is for
    assert (seen.alpha[centre] == 255).mean() > 0.95
    assert (seen.alpha[150:260, 420:520] == 255).mean() > 0.9


def test_factory_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="matting engine"):
        create_engine("nope")
    with pytest.raises(ModelMissing, match="replate models pull") as caught:
        create_engine("u2net", models_dir=tmp_path)
    assert isinstance(caught.value, Unavailable)
    with pytest.raises(ModelMissing, match="replate models pull"):
        create_engine("auto")
    assert isinstance(create_engine("studio"), StudioMatting)


def test_estimate_matte_caches_engines_per_models_dir(models_dir: Path) -> None:
    image = busy_photo(1)
    first = estimate_matte(image, "u2netp", models_dir=models_dir)
    again = estimate_matte(image, "u2netp", models_dir=models_dir)
    np.testing.assert_array_equal(first.alpha, again.alpha)
    assert matting._cached_engine("u2netp", models_dir) is matting._cached_engine("u2netp", models_dir)
    assert estimate_matte(render_studio_shot(320, 240, seed=3).rgb).engine == "studio"


def _disc_alpha() -> np.ndarray:
    alpha = np.zeros((300, 400), np.float32)
    cv2.circle(alpha, (200, 150), 90, 1.0, -1)
    return alpha


@pytest.mark.slow
@pytest.mark.skipif(not (USER_MODELS / "u2netp.onnx").is_file(), reason="run `replate models pull` first")
def test_real_u2netp_on_a_photo() -> None:
    from skimage import data

    image = data.astronaut()
    matte = create_engine("u2netp", models_dir=USER_MODELS).estimate(image)
    check_contract(image, matte)
    subject = matte.alpha.mean() / 255
    partial = ((matte.alpha > 0) & (matte.alpha < 255)).mean()
    print(f"astronaut: subject {subject:.2f}, partial {partial:.3f}, {matte.timings_ms}")
    assert 0.3 < subject < 0.8  # the astronaut fills about half the frame
    assert 0.002 < partial < 0.1  # a soft outline, not a binary mask and not a haze
    assert matte.alpha[400:, 150:350].mean() > 250  # her suit, front and centre
    assert matte.alpha[:60, 440:].mean() < 10  # the wall behind, top right


def test_estimate_mattes_runs_the_segmenter_once_for_a_batch(shot: StudioShot) -> None:
    calls: list[int] = []

    def segment(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return oracle_segment(_disc_alpha())(batch)

    auto = create_engine("auto", segment=segment)
    images = [busy_photo(), shot.rgb, np.zeros((16, 64, 3), np.uint8), busy_photo()]
    results = estimate_mattes(auto, images)
    assert calls == [3]  # the too-small image is refused before the segmenter, the other three share one call
    assert isinstance(results[2], InvalidRequest)
    for image, result in zip(images[:2] + images[3:], results[:2] + results[3:], strict=True):
        assert not isinstance(result, Exception)
        check_contract(image, result)
