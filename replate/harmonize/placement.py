"""Put the subject in the scene as if photographed there: shadow, light and colour, edges; then compose.

`place_subject` is the compose step of the replace pipeline. With harmonize 0 and no shadow it is `compose`
itself. A shadow, carried or synthesised, only darkens the scene behind the subject, so with harmonize 0 subject
pixels with alpha 255 stay bit-exact whatever the shadow. With harmonize > 0 the subject's colours are matched to
the scene's light (`color`) and turned towards its light direction (`light`), and its rim gets the scene's light,
grain and softness (`edges`), all in proportion to the strength.

Shadows: with preserve_shadow, the photo's own shadow found by matting is carried over and nothing is synthesised.
Otherwise `shadow` ("none", "contact", "cast"; None: the scene engine's default, `default_shadow`) is synthesised
from the matte and the scene's light (`shadow`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from replate.compose import compose
from replate.errors import InvalidRequest
from replate.harmonize import color, edges
from replate.harmonize.light import (
    NO_DIRECTION,
    LightDirection,
    Relief,
    estimate_scene_light,
    estimate_subject_light,
    relief_from_alpha,
    relight_ratio,
)
from replate.harmonize.shadow import synthesize_shadow
from replate.matting import Matte

__all__ = [
    "HARMONIZER",
    "SHADOW_MODES",
    "Placed",
    "Placement",
    "check_placement",
    "default_shadow",
    "lighting_info",
    "place_subject",
    "warm_up",
]

SHADOW_MODES = ("none", "contact", "cast")
HARMONIZER = "classical"
"""The engine name harmonisation reports (`engines.harmonize`)."""
_FLOOR_ENGINES = ("studio",)
"""Scene engines whose plates have a floor where the subject stands: a contact shadow by default."""
_REGION_GROWTH = 0.5
"""The scene region whose light the subject is matched to: its bounding box grown by this share on each side."""
_EDGE_MARGIN_PX = 4

Box = tuple[slice, slice]


@dataclass(frozen=True)
class Placement:
    """What the client asked for. harmonize: 0..1; shadow: one of SHADOW_MODES, or None for the scene engine's
    default; preserve_shadow: carry the photo's own shadow; seed: of the grain."""

    harmonize: float = 0.0
    shadow: str | None = None
    preserve_shadow: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_placement(self.harmonize, self.shadow)


@dataclass(frozen=True)
class Placed:
    """rgb: uint8 (H, W, 3) RGB composite; lighting: what was estimated and done (`lighting_info`), None when
    nothing was (harmonize 0 and no shadow); notes: honest remarks; timings_ms: "harmonize" and "compose"."""

    rgb: np.ndarray
    lighting: dict[str, Any] | None
    notes: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Subject:
    """The subject's bounding box, its relief there and the light on it."""

    box: Box
    relief: Relief
    light: LightDirection


def check_placement(harmonize: float, shadow: str | None) -> None:
    """InvalidRequest unless harmonize is in [0, 1] and shadow is None or one of SHADOW_MODES."""
    if not 0.0 <= harmonize <= 1.0:
        raise InvalidRequest(f"harmonize must be between 0 and 1, got {harmonize}")
    if shadow is not None and shadow not in SHADOW_MODES:
        raise InvalidRequest(f"shadow must be one of {', '.join(SHADOW_MODES)}, got {shadow!r}")


def default_shadow(scene_engine: str) -> str:
    """The shadow a scene engine gets when the client names none: a contact shadow on plates with a known floor
    (studio), none elsewhere (a colour has no floor; a photo's or a generated plate's floor is not located)."""
    return "contact" if scene_engine in _FLOOR_ENGINES else "none"


def place_subject(
    image: np.ndarray, matte: Matte, scene: np.ndarray, placement: Placement, scene_engine: str
) -> Placed:
    """The composite of image uint8 (H, W, 3) RGB with its matte over scene uint8 (H, W, 3) RGB, placed as asked."""
    started = time.perf_counter()
    mode = placement.shadow if placement.shadow is not None else default_shadow(scene_engine)
    if placement.harmonize == 0 and mode == "none":
        composite = compose(image, matte, scene, preserve_shadow=placement.preserve_shadow)
        return Placed(composite, None, timings_ms={"compose": _ms_since(started)})
    scene_light = estimate_scene_light(scene)
    subject = _find_subject(matte)
    shading, shadow, notes = _shadow(matte, scene_light, mode, placement)
    harmonizes = placement.harmonize > 0 and subject is not None
    colours, textures = image, (None, None)
    if harmonizes:
        textures = _textures(image, matte.alpha, scene, subject.box)
        colours = _harmonized(matte, scene, placement, subject, scene_light, textures)
    harmonize_ms = _ms_since(started)
    compose_started = time.perf_counter()
    composite = compose(colours, replace(matte, foreground=colours, shading=shading), scene, preserve_shadow=True)
    compose_ms = _ms_since(compose_started)
    if harmonizes:
        edge_started = time.perf_counter()
        sigma_px = edges.soften_sigma_px(*textures, placement.harmonize)
        composite = _softened(composite, matte.alpha, subject.box, sigma_px)
        harmonize_ms += _ms_since(edge_started)
    subject_light = subject.light if subject is not None else NO_DIRECTION
    lighting = lighting_info(scene_light, subject_light, shadow, placement.harmonize)
    return Placed(composite, lighting, notes, {"harmonize": harmonize_ms, "compose": compose_ms})


def warm_up() -> None:
    """Place a small synthetic subject once with everything on, so that the one-time costs (OpenCV's CIELAB tables,
    about 0.1 s) are paid when a server starts, not by its first request."""
    rows, cols = np.mgrid[0:64, 0:64]
    alpha = np.where((rows - 36) ** 2 + (cols - 32) ** 2 < 400, 255, 0).astype(np.uint8)
    image = np.full((64, 64, 3), 128, np.uint8)
    scene = np.repeat(np.linspace(60, 200, 64, dtype=np.float32).astype(np.uint8)[None, :, None], 64, axis=0)
    matte = Matte(alpha=alpha, foreground=image, shading=None, engine="warm-up")
    place_subject(image, matte, np.repeat(scene, 3, axis=2), Placement(harmonize=1.0, shadow="cast"), "studio")


def lighting_info(scene: LightDirection, subject: LightDirection, shadow: str, harmonize: float) -> dict[str, Any]:
    """INFO's account of one output: both light directions, the shadow on it ("carried", "contact", "cast" or
    "none") and the harmonisation strength."""
    return {"scene": scene.as_info(), "subject": subject.as_info(), "shadow": shadow, "harmonize": harmonize}


def _find_subject(matte: Matte) -> _Subject | None:
    rows = np.flatnonzero(matte.alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(matte.alpha.any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    relief = relief_from_alpha(matte.alpha[box])
    return _Subject(box, relief, estimate_subject_light(matte.foreground[box], relief))


def _shadow(
    matte: Matte, light: LightDirection, mode: str, placement: Placement
) -> tuple[np.ndarray | None, str, tuple[str, ...]]:
    """(shading layer or None, which shadow it is, notes)."""
    if placement.preserve_shadow and matte.shading is not None:
        notes: tuple[str, ...] = ()
        if placement.shadow in ("contact", "cast"):
            notes = (
                f"shadow={placement.shadow}: the photo's own shadow was carried over instead (preserve_shadow); "
                "send preserve_shadow=false for a synthesised one",
            )
        return matte.shading, "carried", notes
    if mode == "none":
        return None, "none", ()
    layer = synthesize_shadow(matte.alpha, light, mode)
    if layer is None:
        note = f"shadow={mode}: the subject runs off the bottom of the frame, so it has no floor contact to shade"
        return None, "none", (note,) if placement.shadow is not None else ()
    return layer, mode, ()


def _textures(
    image: np.ndarray, alpha: np.ndarray, scene: np.ndarray, box: Box
) -> tuple[edges.Texture | None, edges.Texture | None]:
    """(the scene's, the subject's) grain and detail next to the subject's boundary."""
    around = _grown(box, alpha.shape, 0.0, _EDGE_MARGIN_PX)
    return (
        edges.measure_texture(scene[around], alpha[around] == 0),
        edges.measure_texture(image[around], alpha[around] == 255),
    )


def _harmonized(
    matte: Matte,
    scene: np.ndarray,
    placement: Placement,
    subject: _Subject,
    scene_light: LightDirection,
    textures: tuple[edges.Texture | None, edges.Texture | None],
) -> np.ndarray:
    """uint8 (H, W, 3): the subject's colours matched to the scene (only pixels with alpha > 0 change)."""
    box, strength = subject.box, placement.harmonize
    alpha, foreground = matte.alpha[box], matte.foreground[box]
    subject_stats = color.colour_stats(foreground, alpha >= 230)
    scene_stats = color.colour_stats(scene[_grown(box, scene.shape[:2], _REGION_GROWTH)])
    if subject_stats is not None and scene_stats is not None:
        ratio = relight_ratio(subject.relief, subject.light, scene_light)
        gain = cv2.resize(ratio, (alpha.shape[1], alpha.shape[0]), interpolation=cv2.INTER_LINEAR)
        foreground = color.match_colours(foreground, alpha, subject_stats, scene_stats, strength, gain)
    foreground = edges.wrap_light(foreground, alpha, scene[box], strength)
    scene_texture, subject_texture = textures
    if scene_texture is not None and subject_texture is not None:
        missing = max(0.0, scene_texture.noise_levels**2 - subject_texture.noise_levels**2) ** 0.5
        foreground = edges.add_grain(foreground, alpha, missing, strength, placement.seed)
    result = matte.foreground.copy()
    result[box] = foreground
    return result


def _softened(composite: np.ndarray, alpha: np.ndarray, box: Box, sigma_px: float) -> np.ndarray:
    """composite with its subject's boundary blurred by sigma_px (edges.soften_boundary)."""
    around = _grown(box, alpha.shape, 0.0, _EDGE_MARGIN_PX)
    result = composite.copy()
    result[around] = edges.soften_boundary(composite[around], alpha[around], sigma_px)
    return result


def _grown(box: Box, shape: tuple[int, ...], share: float, margin_px: int = 0) -> Box:
    """box grown by share of its size plus margin_px on each side, within shape."""
    rows, cols = box
    grow_y = round(share * (rows.stop - rows.start)) + margin_px
    grow_x = round(share * (cols.stop - cols.start)) + margin_px
    return (
        slice(max(0, rows.start - grow_y), min(shape[0], rows.stop + grow_y)),
        slice(max(0, cols.start - grow_x), min(shape[1], cols.stop + grow_x)),
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
