"""Procedural studio backdrops from the words of a prompt.

Not a text-to-image model: the prompt is only searched for CSS colour names ("teal", "light blue"), a few colour
modifiers (deep, pale, pastel), material and place words that map to a palette (wood, marble, kitchen, beach ...)
and light words (warm, sunset, night, moody, soft, neon ...). From those a photographic sweep is drawn: a wall
gradient, a floor plane below a soft horizon, a key light falling off from one side (and, in low-key looks, a pool
of light behind the subject), a vignette, a highlight roll-off and fine film grain.

A colour word sets the hue of a painted wall or paper backdrop, not its CSS value: saturation is held moderate and
lightness is mapped into the range a lit backdrop photographs at ("red" is a brick-red paper, "black" a charcoal
one, "white" a white sweep that is not clipped), so the floor and horizon stay visible for every prompt. Light
words then grade that colour. The seed moves the horizon, the light and the grain a little, so outputs are
deterministic for (prompt, seed, size) and differ subtly between seeds.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass, replace

import numpy as np
from PIL import ImageColor

from replate.scene._spec import Scene, SceneSpec

__all__ = ["StudioScene"]

RGB = tuple[float, float, float]

_NEUTRAL_WALL: RGB = (226.0, 224.0, 220.0)
_GRAIN_LEVELS = 1.3
_FLOOR_DARKENING = 0.22  # the floor is darker towards the camera (bottom of the frame)
_FLOOR_STEP = 0.8  # the floor's luminance at most this fraction of the wall's: the horizon must read
# Colour words: HSV value maps linearly into _VALUE_RANGE and saturation is scaled by _SATURATION_SCALE, so that
# a CSS primary becomes a plausible painted or paper backdrop rather than an emissive display colour.
_VALUE_RANGE = (0.22, 0.88)
_SATURATION_SCALE = 0.6
_MAX_SATURATION = 0.72
_HIGHLIGHT_KNEE = 205.0  # levels above this roll off smoothly towards _HIGHLIGHT_CEILING instead of clipping
_HIGHLIGHT_CEILING = 250.0


@dataclass(frozen=True)
class _Look:
    wall: RGB = _NEUTRAL_WALL
    floor: RGB | None = None  # None: a slightly darker wall colour
    tint: RGB = (1.0, 1.0, 1.0)  # colour of the light, multiplies everything
    brightness: float = 1.0
    key_strength: float = 0.22  # how strongly the key light falls off across the frame
    vignette: float = 0.18
    neon: bool = False
    key_side: int | None = None  # -1 left, +1 right, None: from the seed
    pool: float = 0.0  # strength of a soft pool of light on the set behind the subject (low-key looks)


@dataclass(frozen=True)
class _Modifier:
    """What a word before a colour word does to that colour: HSV value shift and saturation factor."""

    value: float
    saturation: float


_MODIFIERS: dict[str, _Modifier] = {
    "deep": _Modifier(value=-0.2, saturation=1.2),
    "rich": _Modifier(value=-0.1, saturation=1.2),
    "pale": _Modifier(value=0.1, saturation=0.45),
    "pastel": _Modifier(value=0.1, saturation=0.5),
    "light": _Modifier(value=0.1, saturation=0.6),  # "light red": there is no CSS lightred ("light blue" is CSS)
    "muted": _Modifier(value=-0.05, saturation=0.6),
}


# Palettes of plausible studio sets: (wall, floor).
_MATERIALS: dict[str, tuple[RGB, RGB | None]] = {  # floor None: the wall colour, a step darker
    "wood": ((222.0, 208.0, 188.0), (148.0, 102.0, 66.0)),
    "wooden": ((222.0, 208.0, 188.0), (148.0, 102.0, 66.0)),
    "marble": ((236.0, 234.0, 230.0), (214.0, 211.0, 206.0)),
    "concrete": ((176.0, 174.0, 170.0), (138.0, 136.0, 132.0)),
    "stone": ((188.0, 182.0, 172.0), (150.0, 144.0, 134.0)),
    "kitchen": ((234.0, 228.0, 216.0), (190.0, 170.0, 146.0)),
    "beach": ((176.0, 210.0, 236.0), (228.0, 210.0, 172.0)),
    "sand": ((232.0, 218.0, 190.0), (218.0, 196.0, 156.0)),
    "forest": ((112.0, 140.0, 102.0), (84.0, 98.0, 62.0)),
    "garden": ((150.0, 180.0, 130.0), (110.0, 128.0, 84.0)),
    "sky": ((150.0, 196.0, 236.0), (206.0, 222.0, 238.0)),
    "studio": ((232.0, 232.0, 230.0), None),
    "paper": ((240.0, 239.0, 236.0), None),
    "velvet": ((96.0, 36.0, 52.0), (74.0, 26.0, 40.0)),
    "linen": ((232.0, 224.0, 208.0), (214.0, 204.0, 186.0)),
}


@dataclass(frozen=True)
class _Light:
    """What a light word changes: tint and brightness multiply, the others replace when set."""

    tint: RGB = (1.0, 1.0, 1.0)
    brightness: float = 1.0
    key_strength: float | None = None
    vignette: float | None = None
    neon: bool = False
    key_side: int | None = None
    pool: float | None = None


_LIGHTS: dict[str, _Light] = {
    "morning": _Light(tint=(1.05, 1.0, 0.93), brightness=1.08, vignette=0.1),
    "warm": _Light(tint=(1.06, 1.0, 0.90)),
    "golden": _Light(tint=(1.10, 0.99, 0.80), key_strength=0.32),
    "sunset": _Light(tint=(1.12, 0.93, 0.80), brightness=0.92, key_strength=0.36),
    "dawn": _Light(tint=(1.06, 0.97, 0.99), brightness=0.96),
    "cool": _Light(tint=(0.93, 0.98, 1.07)),
    "cold": _Light(tint=(0.92, 0.97, 1.08)),
    "night": _Light(tint=(0.82, 0.90, 1.10), brightness=0.5, vignette=0.55, pool=0.8),
    "moody": _Light(brightness=0.6, key_strength=0.4, vignette=0.55, pool=0.7),
    "dark": _Light(brightness=0.6, vignette=0.45, pool=0.4),
    "dramatic": _Light(key_strength=0.5, vignette=0.45, pool=0.4),
    "bright": _Light(tint=(1.02, 1.0, 0.97), brightness=1.12, vignette=0.06),
    "soft": _Light(key_strength=0.1, vignette=0.1),
    "neon": _Light(brightness=0.5, neon=True, vignette=0.35),
    "left": _Light(key_side=-1),
    "right": _Light(key_side=1),
}


class StudioScene:
    """Procedural studio sweep coloured and lit by the words of spec.prompt."""

    name = "studio"

    def render(self, spec: SceneSpec, width: int, height: int) -> Scene:
        if spec.prompt is None:
            raise ValueError("StudioScene needs spec.prompt")
        look, used_words = _read_prompt(spec.prompt)
        rgb = _draw(look, width, height, np.random.default_rng(spec.seed))
        if used_words:
            notes = (f"procedural studio backdrop shaped by the prompt words: {', '.join(used_words)}",)
        else:
            notes = ("no colour, material or light words recognised in the prompt: a neutral studio sweep was used",)
        notes += ("other prompt words were not used: a full text-to-scene render needs a diffusion engine",)
        return Scene(rgb=rgb, engine=self.name, notes=notes)


def _read_prompt(prompt: str) -> tuple[_Look, tuple[str, ...]]:
    """The look a prompt asks for, and the words that shaped it, in prompt order."""
    words = re.findall(r"[a-z]+", prompt.lower())
    look = _Look()
    colors: list[RGB] = []
    material_floor: RGB | None = None  # a colour word keeps a material's own floor (red wall, wood floor)
    used: list[str] = []
    index = 0
    while index < len(words):
        name, length = _color_name_at(words, index)
        modifier = None
        if name is None and words[index] in _MODIFIERS:  # "deep blue"; "light blue" is a CSS name, found above
            name, length = _color_name_at(words, index + 1)
            modifier, length = _MODIFIERS[words[index]], length + 1
        if name is not None:
            colors.append(_backdrop_color(_css(name), modifier))
            used.append(" ".join(words[index : index + length]))
            index += length
            continue
        word = words[index]
        if word in _LIGHTS:
            look = _with_light(look, _LIGHTS[word])
            used.append(word)
        elif word in _MATERIALS:
            wall, material_floor = _MATERIALS[word]
            look = replace(look, wall=wall, floor=material_floor)
            used.append(word)
        index += 1
    if colors:  # explicit colours win over material palettes: first is the wall, second the floor
        floor = colors[1] if len(colors) > 1 else material_floor
        look = replace(look, wall=colors[0], floor=floor)
    return look, tuple(dict.fromkeys(used))


def _color_name_at(words: list[str], index: int) -> tuple[str | None, int]:
    """(CSS colour name, number of words) starting at words[index]: "light blue" -> ("lightblue", 2)."""
    if index + 1 < len(words) and "".join(words[index : index + 2]) in ImageColor.colormap:
        return "".join(words[index : index + 2]), 2
    if index < len(words) and words[index] in ImageColor.colormap:
        return words[index], 1
    return None, 0


def _css(name: str) -> RGB:
    red, green, blue = ImageColor.getrgb(name)[:3]
    return float(red), float(green), float(blue)


def _backdrop_color(css: RGB, modifier: _Modifier | None) -> RGB:
    """The painted-wall / paper colour for a CSS colour: its hue, moderate saturation, photographable brightness."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(channel / 255.0 for channel in css))
    low, high = _VALUE_RANGE
    # A strong colour of a dark hue (red, blue) at full value reads as a display, not a dye: a little darker.
    luminance = (0.299 * css[0] + 0.587 * css[1] + 0.114 * css[2]) / 255.0
    value = (low + (high - low) * value) * (1.0 - 0.2 * saturation * (1.0 - luminance))
    saturation *= _SATURATION_SCALE
    if modifier is not None:
        value = float(np.clip(value + modifier.value, low, high))
        saturation = min(saturation * modifier.saturation, _MAX_SATURATION)
    red, green, blue = colorsys.hsv_to_rgb(_paper_hue(hue), saturation, value)
    return red * 255.0, green * 255.0, blue * 255.0


def _paper_hue(hue: float) -> float:
    """Hue in [0, 1): the display primary blue (240 deg) is a violet-blue no dye or paint matches; blue backdrops
    sit nearer 225 deg. So 200-250 deg maps onto 200-230 and 250-280 onto 230-280: continuous, others unchanged."""
    degrees = hue * 360.0
    if 200.0 < degrees < 250.0:
        degrees = 200.0 + (degrees - 200.0) * 0.6
    elif 250.0 <= degrees < 280.0:
        degrees = 230.0 + (degrees - 250.0) * 50.0 / 30.0
    return degrees / 360.0


def _with_light(look: _Look, light: _Light) -> _Look:
    return replace(
        look,
        tint=(look.tint[0] * light.tint[0], look.tint[1] * light.tint[1], look.tint[2] * light.tint[2]),
        brightness=look.brightness * light.brightness,
        key_strength=look.key_strength if light.key_strength is None else light.key_strength,
        vignette=look.vignette if light.vignette is None else light.vignette,
        neon=look.neon or light.neon,
        key_side=look.key_side if light.key_side is None else light.key_side,
        pool=look.pool if light.pool is None else max(look.pool, light.pool),
    )


def _draw(look: _Look, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (height, width, 3) RGB sweep. All random choices come from rng, in a fixed order."""
    horizon = 0.62 + rng.uniform(-0.03, 0.03)
    side = look.key_side if look.key_side is not None else (-1 if rng.uniform() < 0.5 else 1)
    light_x = 0.5 + side * rng.uniform(0.35, 0.5)
    light_y = rng.uniform(0.05, 0.3)
    pool_x = 0.5 + side * rng.uniform(0.05, 0.15)
    v = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    u = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]
    aspect = width / height

    wall = np.asarray(look.wall, dtype=np.float32)
    floor = _floor_below(wall, np.asarray(look.floor, dtype=np.float32) if look.floor is not None else wall * 0.85)
    to_floor = _smoothstep((v - horizon) / 0.12 + 0.5)  # (H, 1): the soft curve of the sweep
    wall_shade = 0.9 + 0.1 * np.clip(v / horizon, 0, 1)
    floor_shade = 1.0 - _FLOOR_DARKENING * np.clip((v - horizon) / (1 - horizon), 0, 1)
    rows = (1 - to_floor) * wall_shade * wall + to_floor * floor_shade * floor  # (H, 3)

    # Separable Gaussians keep the 2-D light fields to one outer product each.
    key = np.exp(-(((u - light_x) * aspect) ** 2) / 1.2) * np.exp(-((v - light_y) ** 2) / 1.2)
    gain = (1 + look.key_strength * (key / key.max() - 0.5)) * (
        1 - look.vignette * (((u - 0.5) * 2) ** 2 + ((v - 0.5) * 2) ** 2) / 2
    )
    if look.pool > 0:  # a soft spot behind the subject, centred a little above the horizon
        spot = np.exp(-(((u - pool_x) * aspect) ** 2) / 0.18) * np.exp(-((v - (horizon - 0.08)) ** 2) / 0.1)
        gain = gain * (1 + look.pool * spot)
    picture = rows[:, None, :] * gain[:, :, None] * np.asarray(look.tint, dtype=np.float32) * look.brightness
    if look.neon:
        picture += _neon_glow(u, v, aspect)
    picture = _roll_off_highlights(picture)
    picture += _GRAIN_LEVELS * rng.standard_normal((height, width, 1), dtype=np.float32)
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def _floor_below(wall: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """float32 (3,): the floor colour, darkened where needed so its luminance is at most _FLOOR_STEP of the wall's."""
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    limit = _FLOOR_STEP * float(wall @ luma)
    floor_luminance = float(floor @ luma)
    return floor * (limit / floor_luminance) if floor_luminance > limit else floor


def _roll_off_highlights(picture: np.ndarray) -> np.ndarray:
    """float32: levels above _HIGHLIGHT_KNEE compressed smoothly towards _HIGHLIGHT_CEILING, as film or a camera's
    tone curve does, so a white or brightly lit sweep keeps its gradient instead of clipping flat."""
    headroom = _HIGHLIGHT_CEILING - _HIGHLIGHT_KNEE
    over = np.maximum(picture - _HIGHLIGHT_KNEE, 0.0)
    return picture - over + headroom * (1.0 - np.exp(-over / headroom))


def _neon_glow(u: np.ndarray, v: np.ndarray, aspect: float) -> np.ndarray:
    """float32 (H, W, 3): magenta light spilling from the left, cyan from the right, on the wall."""
    height_falloff = np.exp(-((v - 0.35) ** 2) / 0.08)
    left = np.exp(-((u * aspect) ** 2) / 0.15) * height_falloff
    right = np.exp(-(((1 - u) * aspect) ** 2) / 0.15) * height_falloff
    magenta = np.array([255.0, 40.0, 190.0], dtype=np.float32)
    cyan = np.array([30.0, 220.0, 255.0], dtype=np.float32)
    return 0.55 * (left[:, :, None] * magenta + right[:, :, None] * cyan)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)
