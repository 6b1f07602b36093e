"""A generated harmonisation set with known truth: a subject photographed under light A, put on a scene lit by B.

Each sample renders one subject twice, in linear light: its albedo (a photo bundled with scikit-image, cut by a
procedural silhouette of one or two ellipses standing on the floor) times a light's colour, its intensity and a
Lambertian shading of the silhouette's relief (the union of ellipsoids over it, a different relief from the one the
harmoniser guesses) for the light's direction, plus an ambient share. Under light A it is what the client sends;
under light B, composited with the exact alpha over the scene, it is the truth. The scene (a soft studio sweep, a
tinted texture or another photo) is lit by B: its colour, intensity and a brightness gradient towards B's side.
The matte is exact, so the benchmark measures harmonisation alone (the iHarmony4 protocol: a composite whose
foreground was lit differently, scored against the real photo).

Light categories (A and B differ in):
    colour_cast  white balance: colour temperatures at least 1.6x apart (2700-10000 K, half corrected as a camera
                 would) and a green or magenta tint
    exposure     intensity, 0.7-1.3 stops apart
    direction    the side the light comes from (left or right, 35 degrees up)
    mixed        all three
A sample depends only on (seed, category, index).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from replate.quality.dataset import frame_size, photo_crop
from replate.scene import SceneSpec, make_scene

__all__ = ["LIGHT_CATEGORIES", "SCENE_KINDS", "HarmonizationSample", "Light", "generate_harmonization_samples"]

LIGHT_CATEGORIES = ("colour_cast", "exposure", "direction", "mixed")
SCENE_KINDS = ("studio", "textured", "photo")
_SUBJECT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "immunohistochemistry")
_SCENE_PHOTOS = ("rocket", "coffee", "astronaut", "chelsea", "motorcycle")
_SCENE_TEXTURES = ("brick", "grass", "gravel")
_KELVINS = (2700.0, 3400.0, 4500.0, 5500.0, 6500.0, 8000.0, 10000.0)
_WHITE_BALANCE_LEFT = 0.5  # the share of a light's colour a camera's white balance leaves in (log gains)
_ELEVATION_DEG = 35.0
_AMBIENT = 0.45
_SCENE_GRADIENT = 0.3
_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class Light:
    """colour: linear RGB gains with luminance 1; intensity: linear; azimuth_deg: towards the light in the image
    plane (0 from the right, 90 from above, 180 from the left), elevation_deg above the image plane."""

    colour: tuple[float, float, float]
    intensity: float
    azimuth_deg: float
    elevation_deg: float = _ELEVATION_DEG


@dataclass(frozen=True)
class HarmonizationSample:
    """One case. image: uint8 (H, W, 3) the subject under light A (meaningful where alpha > 0); alpha: uint8
    (H, W) exact; scene: uint8 (H, W, 3) the plate under light B; truth: uint8 (H, W, 3) the subject under B
    composited over the scene."""

    name: str
    category: str
    scene_kind: str
    image: np.ndarray
    alpha: np.ndarray
    scene: np.ndarray
    truth: np.ndarray
    light_a: Light
    light_b: Light


def generate_harmonization_samples(
    megapixels: float, samples_per_category: int, seed: int, categories: tuple[str, ...] = LIGHT_CATEGORIES
) -> Iterator[HarmonizationSample]:
    """samples_per_category samples of each category; sample i is on scene kind SCENE_KINDS[i % 3]."""
    for category in categories:
        for index in range(samples_per_category):
            yield generate_harmonization_sample(category, index, megapixels, seed)


def generate_harmonization_sample(category: str, index: int, megapixels: float, seed: int) -> HarmonizationSample:
    if category not in LIGHT_CATEGORIES:
        raise ValueError(f"category {category!r} is unknown: use one of {', '.join(LIGHT_CATEGORIES)}")
    width, height = frame_size(megapixels)
    rng = np.random.default_rng([seed, LIGHT_CATEGORIES.index(category), index])
    light_a, light_b = _lights(rng, category)
    coverage, normals = _silhouette(rng, width, height)
    subject_name = _SUBJECT_PHOTOS[(index + LIGHT_CATEGORIES.index(category)) % len(_SUBJECT_PHOTOS)]
    albedo = _linear(photo_crop(rng, subject_name, width, height))
    scene_kind = SCENE_KINDS[index % len(SCENE_KINDS)]
    scene = _lit_scene(_scene_albedo(rng, scene_kind, width, height), light_b)
    under_a = _lit_subject(albedo, normals, light_a)
    under_b = _lit_subject(albedo, normals, light_b)
    truth = coverage[:, :, None] * _srgb(under_b) + (1.0 - coverage[:, :, None]) * _srgb(scene)
    return HarmonizationSample(
        name=f"{category}-{index:02d}-{scene_kind}-{subject_name}",
        category=category,
        scene_kind=scene_kind,
        image=_to_uint8(_srgb(under_a)),
        alpha=_to_uint8(coverage * 255.0),
        scene=_to_uint8(_srgb(scene)),
        truth=_to_uint8(truth),
        light_a=light_a,
        light_b=light_b,
    )


def _lights(rng: np.random.Generator, category: str) -> tuple[Light, Light]:
    """(A, B): equal but for what the category changes."""
    kelvin = float(rng.choice(_KELVINS[2:5]))
    colour_a = colour_b = _light_colour(kelvin, 1.0)
    intensity_a = intensity_b = float(2.0 ** rng.uniform(-0.3, 0.3))
    side = 1 if rng.uniform() < 0.5 else -1
    azimuth_a = azimuth_b = _side_azimuth(rng, side)
    if category in ("colour_cast", "mixed"):
        kelvin_a, kelvin_b = _distinct_kelvins(rng)
        colour_a = _light_colour(kelvin_a, float(rng.uniform(0.9, 1.1)))
        colour_b = _light_colour(kelvin_b, float(rng.uniform(0.9, 1.1)))
    if category in ("exposure", "mixed"):
        gap = float(rng.uniform(0.7, 1.3)) * (1 if rng.uniform() < 0.5 else -1)
        intensity_a = float(2.0 ** (rng.uniform(-0.2, 0.2) + gap / 2))
        intensity_b = float(2.0 ** (rng.uniform(-0.2, 0.2) - gap / 2))
    if category in ("direction", "mixed"):
        azimuth_b = _side_azimuth(rng, -side)
    return Light(colour_a, intensity_a, azimuth_a), Light(colour_b, intensity_b, azimuth_b)


def _side_azimuth(rng: np.random.Generator, side: int) -> float:
    """From the upper right (side 1: 15-75 degrees) or the upper left (side -1: 105-165 degrees)."""
    angle = float(rng.uniform(15.0, 75.0))
    return angle if side > 0 else 180.0 - angle


def _distinct_kelvins(rng: np.random.Generator) -> tuple[float, float]:
    while True:
        first, second = (float(k) for k in rng.choice(_KELVINS, 2, replace=False))
        if max(first, second) / min(first, second) >= 1.6:
            return first, second


def _light_colour(kelvin: float, green_tint: float) -> tuple[float, float, float]:
    """Linear RGB gains (luminance 1) of a black body at kelvin (Tanner Helland's fit of the Planckian locus in
    sRGB), with _WHITE_BALANCE_LEFT of it left after white balance, green scaled by green_tint."""
    t = kelvin / 100.0
    red = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    green = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    blue = 255.0 if t >= 66 else 138.5177312231 * math.log(t - 10) - 305.0447927307
    srgb = np.clip(np.array([red, green, blue], dtype=np.float32), 1.0, 255.0)
    gains = _linear(srgb) ** _WHITE_BALANCE_LEFT * np.array([1.0, green_tint, 1.0], dtype=np.float32)
    gains /= float(gains @ _LUMINANCE)
    return float(gains[0]), float(gains[1]), float(gains[2])


def _silhouette(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(coverage float32 (H, W) in [0, 1], anti-aliased; unit normals float32 (H, W, 3), x right, y down, z to the
    camera) of a body and a head standing on the floor."""
    base = height * rng.uniform(0.82, 0.9)
    centre = width * rng.uniform(0.38, 0.62)
    body_ry = height * rng.uniform(0.16, 0.22)
    body_rx = body_ry * rng.uniform(0.55, 0.9)
    head_r = body_rx * rng.uniform(0.5, 0.75)
    ellipses = [
        (centre, base - body_ry, body_rx, body_ry),
        (centre + rng.uniform(-0.2, 0.2) * body_rx, base - 2 * body_ry - 0.6 * head_r, head_r, head_r * 1.1),
    ]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    coverage = np.zeros((height, width), np.float32)
    depth = np.zeros((height, width), np.float32)
    normals = np.zeros((height, width, 3), np.float32)
    normals[:, :, 2] = 1.0
    for cx, cy, rx, ry in ellipses:
        u, v = (x - cx) / rx, (y - cy) / ry
        radius = np.sqrt(u * u + v * v)
        coverage = np.maximum(coverage, np.clip(0.5 - (radius - 1.0) * min(rx, ry), 0.0, 1.0))
        rz = min(rx, ry)
        z = rz * np.sqrt(np.clip(1.0 - radius * radius, 0.0, 1.0))
        nearer = z > depth
        # The ellipsoid's normal: the gradient of (x/rx)^2 + (y/ry)^2 + (z/rz)^2.
        normal = np.stack([u / rx, v / ry, np.maximum(z, 1e-3) / (rz * rz)], axis=2)
        normal /= np.linalg.norm(normal, axis=2, keepdims=True)
        normals[nearer] = normal[nearer]
        depth = np.maximum(depth, z)
    return coverage, normals


def _lit_subject(albedo: np.ndarray, normals: np.ndarray, light: Light) -> np.ndarray:
    """Linear RGB float32 (H, W, 3): albedo x colour x intensity x Lambertian shading (ambient share _AMBIENT),
    normalised so that a surface facing the camera gets the light's intensity."""
    azimuth, elevation = math.radians(light.azimuth_deg), math.radians(light.elevation_deg)
    direction = np.array(
        [math.cos(elevation) * math.cos(azimuth), -math.cos(elevation) * math.sin(azimuth), math.sin(elevation)],
        dtype=np.float32,
    )
    lambert = np.maximum(normals @ direction, 0.0)
    facing = _AMBIENT + (1.0 - _AMBIENT) * math.sin(elevation)
    shading = (_AMBIENT + (1.0 - _AMBIENT) * lambert) / facing
    return albedo * np.asarray(light.colour, np.float32) * light.intensity * shading[:, :, None]


def _scene_albedo(rng: np.random.Generator, kind: str, width: int, height: int) -> np.ndarray:
    """Linear RGB float32 (H, W, 3) of a scene as photographed under neutral light."""
    if kind == "studio":
        plate = make_scene(SceneSpec(prompt="soft grey paper studio", seed=int(rng.integers(1 << 30))), width, height)
        return _linear(plate.rgb.astype(np.float32))
    if kind == "textured":
        texture = photo_crop(rng, str(rng.choice(_SCENE_TEXTURES)), width, height)
        tint = rng.uniform(150.0, 230.0, 3).astype(np.float32) / 255.0
        return _linear(texture) * _linear(tint * 255.0) / float(_linear(np.array([200.0], np.float32))[0])
    return _linear(photo_crop(rng, str(rng.choice(_SCENE_PHOTOS)), width, height))


def _lit_scene(albedo: np.ndarray, light: Light) -> np.ndarray:
    """The scene under light: its colour and intensity, brighter towards the light's side."""
    height, width = albedo.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (x + 0.5) / width * 2.0 - 1.0, (y + 0.5) / height * 2.0 - 1.0
    azimuth = math.radians(light.azimuth_deg)
    reach = _SCENE_GRADIENT * math.cos(math.radians(light.elevation_deg))
    gradient = np.maximum(1.0 + reach * (math.cos(azimuth) * u - math.sin(azimuth) * v), 0.3)
    return albedo * np.asarray(light.colour, np.float32) * light.intensity * gradient[:, :, None]


def _linear(srgb_levels: np.ndarray) -> np.ndarray:
    """float32 linear light of sRGB levels in [0, 255]."""
    levels = np.clip(srgb_levels.astype(np.float32) / 255.0, 0.0, 1.0)
    return np.where(levels <= 0.04045, levels / 12.92, ((levels + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _srgb(linear: np.ndarray) -> np.ndarray:
    """float32 sRGB levels in [0, 255] of linear light (clipped at 1: over-exposure clips, as in a camera)."""
    clipped = np.clip(linear, 0.0, 1.0)
    encoded = np.where(clipped <= 0.0031308, clipped * 12.92, 1.055 * clipped ** (1 / 2.4) - 0.055)
    return (encoded * 255.0).astype(np.float32)


def _to_uint8(levels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)
