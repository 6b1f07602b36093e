"""The GrabCut carve: a backdrop object under the segmenter's haze is carved out; the subject and a clean mask stay."""

from __future__ import annotations

import cv2
import numpy as np

from replate.matting.carve import carve_backdrop

WIDTH, HEIGHT = 900, 600


def textured(rng: np.random.Generator, rgb: tuple[int, int, int], spread: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(0, spread, (HEIGHT, WIDTH, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(np.array(rgb, np.float32) + noise, 0, 255)


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A purple box (the subject) beside a dark wheel (a backdrop object), on a grey-and-dark garage backdrop whose
    colours include the wheel's. Returns the image and the box's and the wheel's bool masks."""
    image = textured(rng, (150, 145, 140), 12)
    image[: HEIGHT // 2] = textured(rng, (36, 34, 33), 8)[: HEIGHT // 2]  # dark shelves behind
    box = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.rectangle(box, (180, 200), (430, 520), 1, -1)
    wheel = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(wheel, (650, 400), 80, 1, -1)
    image[wheel.view(bool)] = textured(rng, (35, 33, 32), 8)[wheel.view(bool)]
    image[box.view(bool)] = textured(rng, (140, 90, 200), 10)[box.view(bool)]
    return np.rint(image).astype(np.uint8), box.view(bool), wheel.view(bool)


def segmenter_mask(box: np.ndarray, hazy: np.ndarray | None) -> np.ndarray:
    """What U²-Net leaves: the subject sure (1.0, blurred outline), and optionally a region half seen (0.7)."""
    mask = box.astype(np.float32)
    if hazy is not None:
        mask = np.maximum(mask, np.where(hazy, 0.7, 0.0).astype(np.float32))
    return cv2.GaussianBlur(mask, (0, 0), 2.5)


def test_a_backdrop_object_under_the_haze_is_carved_and_the_subject_kept() -> None:
    image, box, wheel = scene(np.random.default_rng(0))
    coarse = segmenter_mask(box, wheel)
    carved = carve_backdrop(image, coarse)
    seen = wheel & (coarse >= 0.5)  # what the segmenter took for subject
    assert seen.sum() > 0.8 * wheel.sum()
    assert (carved[seen] < 0.5).mean() > 0.9
    inside = cv2.erode(box.view(np.uint8), np.ones((15, 15), np.uint8)).view(bool)
    assert (carved[inside] == coarse[inside]).all()  # the segmenter is sure of the box: it is never carved
    assert (carved <= coarse).all()  # nothing is ever added


def test_a_subject_coloured_unsure_part_is_kept() -> None:
    """An unsure part of the subject's own colour (a purple strap) stays: the backdrop does not explain it."""
    image, box, _ = scene(np.random.default_rng(1))
    strap = np.zeros(box.shape, np.uint8)
    cv2.rectangle(strap, (430, 300), (700, 340), 1, -1)
    strap = strap.view(bool)
    image[strap] = image[box][: np.count_nonzero(strap)]
    coarse = segmenter_mask(box, strap)
    carved = carve_backdrop(image, coarse)
    seen = strap & (coarse >= 0.5)
    assert (carved[seen] >= 0.5).mean() > 0.95


def test_a_clean_mask_is_returned_as_it_is() -> None:
    """No haze, only the outline's thin unsure ring: GrabCut does not even run."""
    image, box, _ = scene(np.random.default_rng(2))
    coarse = segmenter_mask(box, None)
    assert carve_backdrop(image, coarse) is coarse
