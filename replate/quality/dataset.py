"""A generated matting set with exact ground truth: real textures cut by procedural alphas, on four kinds of backdrop.

Every sample is built from its three layers, so the truth is exact by construction: the image is the JPEG (quality
85) of round(alpha * F + (1 - alpha) * B + noise), where alpha is drawn with anti-aliased, sub-pixel primitives
(OpenCV, 1/16 px coordinates) and F and B are real textures. Nothing is estimated from the image afterwards.

Categories (the subject):
    hair               a head and shoulders cut by the bottom edge, with hundreds of curling 1-px strands
    fur                an animal body with thousands of short strands all round a softly blurred outline
    holes              a perforated plate and a ring: backdrop seen through holes of every size
    chain              a necklace of links (in-plane loops and edge-on bars), a pendant and a 1-px string
    glass              a wine glass: a faint body (alpha ~0.2), denser rim and stem, a highlight, some wine
    motion_blur        a textured car-like shape smeared along a line (alpha and alpha*F blurred together)
    product_hard_edge  a box in perspective and a can: straight, 1-px anti-aliased edges
    soft_shadow        the same kind of product casting a soft and a contact shadow on the floor; the shadow is
                       part of the backdrop (true alpha 0 there), a matte that keeps it is wrong
Backdrops: studio (light sweep with a vignette), gradient (two colours), textured (scikit-image's brick, grass or
gravel, tinted), photo (another scikit-image photo).

Textures are photos bundled with scikit-image (astronaut, coffee, chelsea, rocket, immunohistochemistry, the
stereo motorcycle; brick, grass, gravel), which load without a network. A sample depends only on (seed, category,
index): the same scene is drawn at every size, so sizes are comparable; only the pixel noise depends on the size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from replate.imageio import ImageLimits, decode_image, encode_image

__all__ = [
    "BACKDROPS",
    "CATEGORIES",
    "JPEG_QUALITY",
    "Sample",
    "bundled_photo",
    "frame_size",
    "generate_sample",
    "generate_samples",
    "photo_crop",
]

CATEGORIES = ("hair", "fur", "holes", "chain", "glass", "motion_blur", "product_hard_edge", "soft_shadow")
BACKDROPS = ("studio", "gradient", "textured", "photo")
JPEG_QUALITY = 85
NOISE_LEVELS = 1.5  # std of the Gaussian sensor noise, 8-bit levels, before JPEG
ASPECT = 1.5  # width / height
_DESIGN_HEIGHT_PX = 816  # primitive sizes are designed at 1 MP (1224 x 816); `unit` scales them
_SHIFT = 4  # OpenCV fixed-point bits: coordinates in 1/16 px
_FOREGROUND_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
_BACKDROP_PHOTOS = ("rocket", "coffee", "astronaut", "chelsea", "motorcycle")
_BACKDROP_TEXTURES = ("brick", "grass", "gravel")


@dataclass(frozen=True)
class Sample:
    """One benchmark image and its truth.

    name: "<category>-<index>-<backdrop>", e.g. "hair-00-studio".
    image: uint8 (H, W, 3) RGB, the JPEG-decoded composite an engine sees.
    alpha: float32 (H, W) in [0, 1], the true alpha.
    foreground: float32 (H, W, 3) RGB in [0, 255], the true subject colours (meaningful where alpha > 0).
    background: float32 (H, W, 3) RGB in [0, 255], the backdrop as seen, cast shadows included.
    """

    name: str
    category: str
    backdrop: str
    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    background: np.ndarray


@dataclass(frozen=True)
class _Layers:
    alpha: np.ndarray  # float32 (H, W)
    foreground: np.ndarray  # float32 (H, W, 3)
    shadow: np.ndarray | None  # float32 (H, W) multiplier of the backdrop in (0, 1], None for no shadow


def frame_size(megapixels: float) -> tuple[int, int]:
    """(width, height) in px of a 3:2 frame of about `megapixels` million pixels."""
    if megapixels <= 0:
        raise ValueError(f"megapixels must be positive, got {megapixels}")
    height = max(32, round(math.sqrt(megapixels * 1e6 / ASPECT)))
    return round(height * ASPECT), height


def generate_samples(
    megapixels: float, samples_per_category: int, seed: int, categories: tuple[str, ...] = CATEGORIES
) -> Iterator[Sample]:
    """samples_per_category samples of each category, in order; sample i of category c is on backdrop
    BACKDROPS[(c + i) % 4], so two samples per category already cover every backdrop four times over the set."""
    for category in categories:
        for index in range(samples_per_category):
            yield generate_sample(category, index, megapixels, seed)


def generate_sample(category: str, index: int, megapixels: float, seed: int) -> Sample:
    """The sample `index` of `category` at `megapixels`; deterministic in (category, index, seed), see the module."""
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is unknown: use one of {', '.join(CATEGORIES)}")
    category_index = CATEGORIES.index(category)
    backdrop_name = BACKDROPS[(category_index + index) % len(BACKDROPS)]
    width, height = frame_size(megapixels)
    rng = np.random.default_rng([seed, category_index, index])
    layers = _SUBJECTS[category](rng, width, height)
    background = _BACKDROP_MAKERS[backdrop_name](rng, width, height)
    if layers.shadow is not None:
        background = background * layers.shadow[:, :, None]
    alpha = layers.alpha[:, :, None]
    composite = alpha * layers.foreground + (1.0 - alpha) * background
    noise_rng = np.random.default_rng([seed, category_index, index, width])
    composite += noise_rng.normal(0.0, NOISE_LEVELS, composite.shape).astype(np.float32)
    rgb = np.clip(np.rint(composite), 0, 255).astype(np.uint8)
    limits = ImageLimits(max_megapixels=max(25.0, 2 * megapixels), max_bytes=1 << 30)
    image = decode_image(encode_image(rgb, "jpeg", quality=JPEG_QUALITY), limits).rgb
    return Sample(
        name=f"{category}-{index:02d}-{backdrop_name}",
        category=category,
        backdrop=backdrop_name,
        image=image,
        alpha=layers.alpha,
        foreground=layers.foreground,
        background=background.astype(np.float32),
    )


# ---------------------------------------------------------------- textures


@functools.cache
def bundled_photo(name: str) -> np.ndarray:
    """float32 (h, w, 3) RGB in [0, 255] of a photo bundled with scikit-image (gray textures as 3 equal channels)."""
    from skimage import data

    pixels = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3]).astype(np.float32)


def photo_crop(rng: np.random.Generator, name: str, width: int, height: int) -> np.ndarray:
    """float32 (H, W, 3): a random crop of a photo with the frame's aspect, resized to the frame."""
    photo = bundled_photo(name)
    ph, pw = photo.shape[:2]
    crop_h = min(ph, pw / ASPECT) * rng.uniform(0.6, 1.0)
    crop_w = crop_h * ASPECT
    y0 = rng.uniform(0, ph - crop_h)
    x0 = rng.uniform(0, pw - crop_w)
    crop = photo[int(y0) : int(y0 + crop_h), int(x0) : int(x0 + crop_w)]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def _tinted(texture: np.ndarray, rgb: tuple[float, float, float], contrast: float = 0.6) -> np.ndarray:
    """float32 (H, W, 3): the texture's luminance, normalised around 1 with the given contrast, times a colour."""
    luminance = texture.mean(axis=2)
    relative = 1.0 + contrast * (luminance / max(float(luminance.mean()), 1.0) - 1.0)
    return (relative[:, :, None] * np.asarray(rgb, dtype=np.float32)).clip(0, 255).astype(np.float32)


def _random_color(rng: np.random.Generator, low: float, high: float) -> tuple[float, float, float]:
    red, green, blue = rng.uniform(low, high, 3)
    return float(red), float(green), float(blue)


# ---------------------------------------------------------------- drawing


def _point(xy: np.ndarray) -> tuple[int, int]:
    """One fixed-point OpenCV coordinate pair of a float px point (2,)."""
    x, y = _points(xy)
    return int(x), int(y)


def _points(xy: np.ndarray) -> np.ndarray:
    """int32 fixed-point OpenCV coordinates of float px coordinates (..., 2)."""
    return np.rint(np.asarray(xy) * (1 << _SHIFT)).astype(np.int32)


def _canvas(width: int, height: int) -> np.ndarray:
    return np.zeros((height, width), dtype=np.uint8)


def _coverage(canvas: np.ndarray) -> np.ndarray:
    return canvas.astype(np.float32) / 255.0


def _fill_polygon(canvas: np.ndarray, xy: np.ndarray, value: int = 255) -> None:
    cv2.fillPoly(canvas, [_points(xy)], value, cv2.LINE_AA, _SHIFT)


def _fill_ellipse(
    canvas: np.ndarray,
    center: tuple[float, float],
    axes: tuple[float, float],
    angle: float = 0.0,
    value: int = 255,
    thickness: int = -1,
) -> None:
    """Anti-aliased ellipse; value 0 cuts a hole (OpenCV blends the colour over the canvas by coverage)."""
    cx, cy = (int(v) for v in _points(center))
    ax, ay = (max(1, int(v)) for v in _points(axes))
    cv2.ellipse(canvas, (cx, cy), (ax, ay), angle, 0, 360, value, thickness, cv2.LINE_AA, _SHIFT)


def _strands(canvas: np.ndarray, paths: list[np.ndarray], thickness: int) -> None:
    """Opaque anti-aliased polylines: coverage accumulates as 1 - (1 - old)(1 - new), i.e. "over"."""
    cv2.polylines(canvas, [_points(path) for path in paths], False, 255, thickness, cv2.LINE_AA, _SHIFT)


def _over(alpha: np.ndarray, premultiplied: np.ndarray, coverage: np.ndarray, color: np.ndarray) -> None:
    """In place: put a layer (coverage (H, W), colour (H, W, 3) or (3,)) over (alpha, alpha * F)."""
    inverse = 1.0 - coverage
    premultiplied *= inverse[:, :, None]
    premultiplied += coverage[:, :, None] * color
    alpha *= inverse
    alpha += coverage


def _unpremultiply(alpha: np.ndarray, premultiplied: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """F = (alpha F) / alpha, the fallback colour where alpha is ~0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        colors = premultiplied / alpha[:, :, None]
    return np.where(alpha[:, :, None] > 1e-4, colors, fallback).clip(0, 255).astype(np.float32)


def _random_walks(
    rng: np.random.Generator,
    starts: np.ndarray,
    headings: np.ndarray,
    lengths: np.ndarray,
    steps: int,
    curl: float,
    gravity: float,
) -> list[np.ndarray]:
    """Strand paths (steps + 1, 2) in px from start points: the heading drifts randomly (curl, rad per step) and
    bends down (gravity, per step)."""
    turns = np.cumsum(rng.normal(0.0, curl, (len(starts), steps)), axis=1) + headings[:, None]
    dx, dy = np.cos(turns), np.sin(turns)
    dy = dy + gravity * np.arange(steps)[None, :]
    norm = np.hypot(dx, dy)
    step = (lengths / steps)[:, None]
    xs = starts[:, 0:1] + np.concatenate([np.zeros((len(starts), 1)), np.cumsum(dx / norm * step, axis=1)], axis=1)
    ys = starts[:, 1:2] + np.concatenate([np.zeros((len(starts), 1)), np.cumsum(dy / norm * step, axis=1)], axis=1)
    return list(np.stack([xs, ys], axis=2))


def _draw_strand_layers(
    rng: np.random.Generator, width: int, height: int, paths: list[np.ndarray], thickness: int
) -> np.ndarray:
    """float32 (H, W): strands spread over three layers of different opacity (thinner-than-a-pixel hairs)."""
    alpha = np.zeros((height, width), dtype=np.float32)
    group = rng.integers(0, 3, len(paths))
    for layer, opacity in enumerate((1.0, 0.65, 0.4)):
        canvas = _canvas(width, height)
        _strands(canvas, [path for path, g in zip(paths, group, strict=True) if g == layer], thickness)
        coverage = _coverage(canvas) * opacity
        alpha = 1.0 - (1.0 - alpha) * (1.0 - coverage)
    return alpha


# ---------------------------------------------------------------- subjects


def _hair(rng: np.random.Generator, width: int, height: int) -> _Layers:
    unit = height / _DESIGN_HEIGHT_PX
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.42, 0.5)
    radius = height * rng.uniform(0.2, 0.26)
    body = _canvas(width, height)
    _fill_ellipse(body, (cx, cy), (radius * 0.82, radius))
    _fill_ellipse(body, (cx, height * 1.08), (radius * 2.1, height * 0.38))  # shoulders, cut by the bottom edge
    count = 700
    angles = rng.uniform(-math.pi - 0.35, 0.35, count)
    starts = np.stack([cx + 0.8 * radius * np.cos(angles), cy + 0.95 * radius * np.sin(angles)], axis=1)
    lengths = height * rng.uniform(0.06, 0.3, count)
    paths = _random_walks(rng, starts, angles + rng.normal(0, 0.3, count), lengths, 24, 0.09, 0.05)
    strands = _draw_strand_layers(rng, width, height, paths, max(1, round(0.8 * unit)))
    skin = photo_crop(rng, str(rng.choice(_FOREGROUND_PHOTOS)), width, height)
    hair_color = _tinted(photo_crop(rng, "chelsea", width, height), _random_color(rng, 40, 200), contrast=0.5)
    alpha = _coverage(body)
    premultiplied = alpha[:, :, None] * skin
    _over(alpha, premultiplied, strands, hair_color)
    return _Layers(alpha, _unpremultiply(alpha, premultiplied, hair_color), None)


def _fur(rng: np.random.Generator, width: int, height: int) -> _Layers:
    unit = height / _DESIGN_HEIGHT_PX
    cx, cy = width * rng.uniform(0.42, 0.58), height * rng.uniform(0.48, 0.55)
    rx, ry = height * rng.uniform(0.38, 0.48), height * rng.uniform(0.22, 0.3)
    body = _canvas(width, height)
    tilt = float(rng.uniform(-15, 15))
    _fill_ellipse(body, (cx, cy), (rx, ry), angle=tilt)
    _fill_ellipse(body, (cx + rx * 0.85, cy - ry * 0.7), (ry * 0.55, ry * 0.5))  # head
    alpha = cv2.GaussianBlur(_coverage(body), (0, 0), 1.2 * unit)
    count = 3500
    angles = rng.uniform(-math.pi, math.pi, count)
    ex, ey = 0.97 * rx * np.cos(angles), 0.97 * ry * np.sin(angles)
    cos_t, sin_t = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
    starts = np.stack([cx + cos_t * ex - sin_t * ey, cy + sin_t * ex + cos_t * ey], axis=1)
    angles = angles + math.radians(tilt)
    lengths = height * rng.uniform(0.012, 0.045, count)
    paths = _random_walks(rng, starts, angles + rng.normal(0, 0.45, count), lengths, 5, 0.15, 0.02)
    strands = _draw_strand_layers(rng, width, height, paths, 1)
    coat = _tinted(photo_crop(rng, "chelsea", width, height), _random_color(rng, 60, 230), contrast=0.8)
    premultiplied = alpha[:, :, None] * coat
    _over(alpha, premultiplied, strands, coat)
    return _Layers(alpha, _unpremultiply(alpha, premultiplied, coat), None)


def _holes(rng: np.random.Generator, width: int, height: int) -> _Layers:
    plate = _canvas(width, height)
    cx, cy = width * rng.uniform(0.35, 0.45), height * 0.5
    half_w, half_h = height * rng.uniform(0.3, 0.38), height * rng.uniform(0.3, 0.4)
    theta = np.linspace(0, 2 * math.pi, 400, endpoint=False)
    superellipse = np.stack(
        [
            cx + half_w * np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** 0.5,
            cy + half_h * np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** 0.5,
        ],
        axis=1,
    )
    _fill_polygon(plate, superellipse)
    pitch = height * rng.uniform(0.07, 0.1)
    for gy in np.arange(cy - half_h + pitch, cy + half_h - pitch * 0.6, pitch):
        for gx in np.arange(cx - half_w + pitch, cx + half_w - pitch * 0.6, pitch):
            radius = pitch * rng.uniform(0.08, 0.38)
            _fill_ellipse(
                plate,
                (gx + rng.uniform(-0.1, 0.1) * pitch, gy),
                (radius, radius * rng.uniform(0.6, 1)),
                angle=float(rng.uniform(0, 180)),
                value=0,
            )
    ring_x = width * rng.uniform(0.74, 0.82)
    ring_r = height * rng.uniform(0.13, 0.18)
    _fill_ellipse(plate, (ring_x, cy), (ring_r, ring_r))
    _fill_ellipse(plate, (ring_x, cy), (ring_r * 0.55, ring_r * 0.55), value=0)
    texture = photo_crop(rng, str(rng.choice(("immunohistochemistry", "coffee", "rocket"))), width, height)
    return _Layers(_coverage(plate), texture, None)


def _chain(rng: np.random.Generator, width: int, height: int) -> _Layers:
    canvas = _canvas(width, height)
    wire = max(1, round(height * 0.0035))
    x0, x1 = width * rng.uniform(0.1, 0.25), width * rng.uniform(0.75, 0.9)
    sag = height * rng.uniform(0.55, 0.75)
    link = height * rng.uniform(0.03, 0.045)
    u = np.linspace(-1, 1, 2000)
    curve = np.stack(
        [x0 + (u + 1) / 2 * (x1 - x0), -0.03 * height + sag * (1 - (np.cosh(1.5 * u) - 1) / (np.cosh(1.5) - 1))], axis=1
    )
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(curve, axis=0).T))])
    for k, distance in enumerate(np.arange(0.0, arc[-1], 0.75 * link)):
        i = min(int(np.searchsorted(arc, distance)), len(curve) - 2)
        tangent = curve[i + 1] - curve[i]
        angle = math.degrees(math.atan2(tangent[1], tangent[0]))
        if k % 2 == 0:
            _fill_ellipse(canvas, tuple(curve[i]), (link / 2, link * 0.28), angle=angle, thickness=wire)
        else:
            half = tangent / np.hypot(*tangent) * link / 2
            cv2.line(canvas, _point(curve[i] - half), _point(curve[i] + half), 255, wire, cv2.LINE_AA, _SHIFT)
    bottom = curve[len(curve) // 2]
    pendant_r = height * 0.06
    _fill_ellipse(canvas, (bottom[0], bottom[1] + pendant_r * 1.1), (pendant_r, pendant_r))
    _fill_ellipse(canvas, (bottom[0], bottom[1] + pendant_r * 1.1), (pendant_r * 0.4, pendant_r * 0.4), value=0)
    string = np.stack(
        [
            np.linspace(width * 0.05, width * rng.uniform(0.3, 0.7), 200),
            height * (0.9 - 0.15 * np.sin(np.linspace(0, math.pi, 200))),
        ],
        axis=1,
    )
    _strands(canvas, [string], 1)
    metal = _tinted(photo_crop(rng, "rocket", width, height), _random_color(rng, 150, 240), contrast=1.0)
    return _Layers(_coverage(canvas), metal, None)


def _glass(rng: np.random.Generator, width: int, height: int) -> _Layers:
    unit = height / _DESIGN_HEIGHT_PX
    cx = width * rng.uniform(0.4, 0.6)
    bowl_cy, bowl_rx, bowl_ry = height * 0.3, height * rng.uniform(0.15, 0.2), height * 0.22
    bowl = _canvas(width, height)
    _fill_ellipse(bowl, (cx, bowl_cy), (bowl_rx, bowl_ry))
    bowl[: int(height * 0.14)] = 0  # the rim is a straight cut
    solid = _canvas(width, height)
    stem_top, stem_bottom = bowl_cy + bowl_ry * 0.95, height * 0.88
    stem_w = height * 0.012
    _fill_polygon(
        solid,
        np.array(
            [[cx - stem_w, stem_top], [cx + stem_w, stem_top], [cx + stem_w, stem_bottom], [cx - stem_w, stem_bottom]]
        ),
    )
    _fill_ellipse(solid, (cx, stem_bottom), (bowl_rx * 0.8, height * 0.025))
    body = _coverage(bowl)
    thickness = max(2, round(9 * unit)) | 1
    rim = np.clip(body - cv2.erode(body, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))), 0, 1)
    liquid = body * (np.mgrid[0:height, 0:width][0] > bowl_cy + rng.uniform(-0.05, 0.1) * height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    highlight = body * np.exp(-(((x - (cx - 0.5 * bowl_rx)) / (0.08 * bowl_rx)) ** 2)) * (y < bowl_cy + 0.5 * bowl_ry)
    tint = np.asarray(_random_color(rng, 170, 235), dtype=np.float32)
    alpha = np.zeros((height, width), dtype=np.float32)
    premultiplied = np.zeros((height, width, 3), dtype=np.float32)
    _over(alpha, premultiplied, body * rng.uniform(0.15, 0.25), tint)
    _over(alpha, premultiplied, liquid * rng.uniform(0.7, 0.85), np.asarray(_random_color(rng, 40, 160), np.float32))
    _over(alpha, premultiplied, rim * 0.6, tint)
    _over(alpha, premultiplied, _coverage(solid) * 0.65, tint)
    _over(alpha, premultiplied, highlight.astype(np.float32) * 0.6, np.full(3, 250.0, dtype=np.float32))
    return _Layers(alpha, _unpremultiply(alpha, premultiplied, np.broadcast_to(tint, (height, width, 3))), None)


def _motion_blur(rng: np.random.Generator, width: int, height: int) -> _Layers:
    canvas = _canvas(width, height)
    cx, base = width * rng.uniform(0.45, 0.55), height * rng.uniform(0.7, 0.78)
    length, roof = height * rng.uniform(0.45, 0.6), height * rng.uniform(0.25, 0.32)
    _fill_polygon(
        canvas,
        np.array(
            [
                [cx - length, base],
                [cx - length, base - roof * 0.5],
                [cx - length * 0.45, base - roof * 0.55],
                [cx - length * 0.2, base - roof],
                [cx + length * 0.35, base - roof],
                [cx + length * 0.6, base - roof * 0.55],
                [cx + length, base - roof * 0.45],
                [cx + length, base],
            ]
        ),
    )
    for wheel_x in (cx - length * 0.6, cx + length * 0.6):
        _fill_ellipse(canvas, (wheel_x, base), (roof * 0.3, roof * 0.3))
    texture = photo_crop(rng, str(rng.choice(("astronaut", "rocket", "coffee"))), width, height)
    alpha = _coverage(canvas)
    blur_px = height * rng.uniform(0.02, 0.06)
    angle = rng.uniform(-0.35, 0.35)
    size = int(blur_px) | 1
    kernel = np.zeros((size, size), dtype=np.uint8)
    half = np.array([math.cos(angle), math.sin(angle)]) * (size - 1) / 2
    center = np.array([(size - 1) / 2, (size - 1) / 2])
    cv2.line(kernel, _point(center - half), _point(center + half), 255, 1, cv2.LINE_AA, _SHIFT)
    line = kernel.astype(np.float32) / float(kernel.sum())
    blurred_alpha = cv2.filter2D(alpha, -1, line, borderType=cv2.BORDER_REFLECT).clip(0, 1)
    premultiplied = cv2.filter2D(alpha[:, :, None] * texture, -1, line, borderType=cv2.BORDER_REFLECT)
    return _Layers(blurred_alpha, _unpremultiply(blurred_alpha, premultiplied, texture), None)


def _product(
    rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """(alpha float32, premultiplied colours float32, floor y px, (left, right) x px) of a box and a can."""
    alpha = np.zeros((height, width), dtype=np.float32)
    premultiplied = np.zeros((height, width, 3), dtype=np.float32)
    label = photo_crop(rng, str(rng.choice(("coffee", "astronaut", "immunohistochemistry"))), width, height)
    floor = height * rng.uniform(0.8, 0.86)
    bx, bw, bh, depth = width * rng.uniform(0.3, 0.4), height * 0.22, height * rng.uniform(0.4, 0.5), height * 0.1
    base = _random_color(rng, 60, 220)
    faces = [
        (np.array([[bx - bw, floor], [bx + bw, floor], [bx + bw, floor - bh], [bx - bw, floor - bh]]), 1.0, True),
        (
            np.array(
                [
                    [bx + bw, floor],
                    [bx + bw + depth, floor - depth * 0.6],
                    [bx + bw + depth, floor - bh - depth * 0.6],
                    [bx + bw, floor - bh],
                ]
            ),
            0.7,
            False,
        ),
        (
            np.array(
                [
                    [bx - bw, floor - bh],
                    [bx + bw, floor - bh],
                    [bx + bw + depth, floor - bh - depth * 0.6],
                    [bx - bw + depth, floor - bh - depth * 0.6],
                ]
            ),
            1.15,
            False,
        ),
    ]
    for polygon, light, is_labelled in faces:
        canvas = _canvas(width, height)
        _fill_polygon(canvas, polygon)
        color = np.asarray(base, dtype=np.float32) * light
        face = 0.5 * color + 0.5 * label * light if is_labelled else np.broadcast_to(color, label.shape)
        _over(alpha, premultiplied, _coverage(canvas), face.clip(0, 255))
    can = _canvas(width, height)
    kx, kw, kh = width * rng.uniform(0.68, 0.76), height * 0.1, height * rng.uniform(0.3, 0.4)
    _fill_polygon(can, np.array([[kx - kw, floor - kh], [kx + kw, floor - kh], [kx + kw, floor], [kx - kw, floor]]))
    _fill_ellipse(can, (kx, floor), (kw, kw * 0.25))
    _fill_ellipse(can, (kx, floor - kh), (kw, kw * 0.25))
    x = np.arange(width, dtype=np.float32)
    shade = 0.75 + 0.3 * np.sqrt(np.clip(1 - ((x - kx) / kw) ** 2, 0, 1)) - 0.12 * np.clip((x - kx) / kw, -1, 1)
    metal = np.asarray(_random_color(rng, 90, 230), dtype=np.float32)[None, None, :] * shade[None, :, None]
    _over(alpha, premultiplied, _coverage(can), np.broadcast_to(metal.clip(0, 255), (height, width, 3)))
    return alpha, premultiplied, floor, (bx - bw, kx + kw)


def _product_hard_edge(rng: np.random.Generator, width: int, height: int) -> _Layers:
    alpha, premultiplied, _floor, _span = _product(rng, width, height)
    return _Layers(alpha, _unpremultiply(alpha, premultiplied, np.full(3, 128.0, np.float32)), None)


def _soft_shadow(rng: np.random.Generator, width: int, height: int) -> _Layers:
    alpha, premultiplied, floor, (left, right) = _product(rng, width, height)
    footprint = _canvas(width, height)
    middle, half = (left + right) / 2, (right - left) / 2
    offset = height * rng.uniform(-0.12, 0.12)  # the light comes from one side
    _fill_ellipse(footprint, (middle + offset, floor), (half * 1.1, height * 0.05))
    soft = cv2.GaussianBlur(_coverage(footprint), (0, 0), height * rng.uniform(0.02, 0.04))
    contact = _canvas(width, height)
    _fill_ellipse(contact, (middle, floor), (half, height * 0.008))
    contact_soft = cv2.GaussianBlur(_coverage(contact), (0, 0), height * 0.005)
    shadow = (1.0 - rng.uniform(0.3, 0.5) * soft) * (1.0 - 0.4 * contact_soft)
    return _Layers(alpha, _unpremultiply(alpha, premultiplied, np.full(3, 128.0, np.float32)), shadow)


_SUBJECTS: dict[str, Callable[[np.random.Generator, int, int], _Layers]] = {
    "hair": _hair,
    "fur": _fur,
    "holes": _holes,
    "chain": _chain,
    "glass": _glass,
    "motion_blur": _motion_blur,
    "product_hard_edge": _product_hard_edge,
    "soft_shadow": _soft_shadow,
}


# ---------------------------------------------------------------- backdrops


def _studio(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = y / height, x / width - 0.5
    sweep = 1 / (1 + np.exp(-(v - 0.65) / 0.1))
    level = rng.uniform(200, 238) + 14 * sweep - 35 * u * u
    tint = 1.0 + rng.uniform(-0.02, 0.02, 3).astype(np.float32)
    return (level[:, :, None] * tint).clip(0, 255).astype(np.float32)


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    t = ((x - width / 2) * math.cos(angle) + (y - height / 2) * math.sin(angle)) / max(width, height) + 0.5
    start = np.asarray(_random_color(rng, 20, 235), dtype=np.float32)
    end = np.asarray(_random_color(rng, 20, 235), dtype=np.float32)
    return (start + np.clip(t, 0, 1)[:, :, None] * (end - start)).astype(np.float32)


def _textured(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    texture = bundled_photo(str(rng.choice(_BACKDROP_TEXTURES)))
    tile = max(8, round(height / rng.uniform(1.0, 2.0)))
    tiled = cv2.resize(texture, (tile, tile), interpolation=cv2.INTER_CUBIC)
    mirrored = np.vstack([np.hstack([tiled, tiled[:, ::-1]]), np.hstack([tiled[::-1], tiled[::-1, ::-1]])])  # no seams
    reps = (height // (2 * tile) + 1, width // (2 * tile) + 1, 1)
    return _tinted(np.tile(mirrored, reps)[:height, :width], _random_color(rng, 70, 220), contrast=0.7)


def _photo_backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    return photo_crop(rng, str(rng.choice(_BACKDROP_PHOTOS)), width, height)


_BACKDROP_MAKERS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "studio": _studio,
    "gradient": _gradient,
    "textured": _textured,
    "photo": _photo_backdrop,
}
