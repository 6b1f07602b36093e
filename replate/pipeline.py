"""The two products of replate as pure functions: encoded bytes in, encoded bytes out.

Each pipeline is written once, as steps: a generator that decodes, yields the image it needs a matte for, receives
the Matte, and returns the result (sans-I/O, so nothing here knows where mattes come from). `run_steps` drives it
with an in-process matting callable (CLI, tests); the Triton adapters drive a whole batch of them and ask the
dynamically batched `matting` model for all their mattes at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

import numpy as np

from replate.compose import compose, cutout
from replate.errors import InvalidRequest
from replate.imageio import OUTPUT_FORMATS, DecodedImage, ImageLimits, decode_image, encode_image
from replate.matting import Matte
from replate.scene import SceneSpec, make_scene

EstimateMatte = Callable[[np.ndarray], Matte]
"""image uint8 (H, W, 3) RGB -> Matte."""
Steps = Generator[np.ndarray, Matte, "PipelineResult"]
"""Yields the image uint8 (H, W, 3) RGB that needs a matte, is sent its Matte, returns the PipelineResult."""

MAX_OUTPUTS = 4


GENERATION_PARAMETERS = (
    "negative_prompt",
    "scheduler",
    "num_inference_steps",
    "guidance_scale",
    "strength",
    "cn_weight",
    "ip_adapter_weight",
)
"""Options only a diffusion scene engine uses; other engines say in the notes that they did not use them."""


@dataclass(frozen=True)
class ReplaceOptions:
    scene_prompt: str | None = None
    bg_color: str | None = None
    seed: int = 0
    preserve_shadow: bool = True
    num_outputs: int = 1
    output_format: str = "png"
    max_megapixels: float = ImageLimits.max_megapixels
    max_bytes: int = ImageLimits.max_bytes
    negative_prompt: str | None = None
    scheduler: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    strength: float | None = None
    cn_weight: float | None = None
    ip_adapter_weight: float | None = None

    def __post_init__(self) -> None:
        _check_output_format(self.output_format, OUTPUT_FORMATS)
        if not 1 <= self.num_outputs <= MAX_OUTPUTS:
            raise InvalidRequest(f"num_outputs must be between 1 and {MAX_OUTPUTS}, got {self.num_outputs}")


@dataclass(frozen=True)
class RemoveOptions:
    channels: Literal["rgba", "alpha"] = "rgba"
    output_format: str = "png"
    max_megapixels: float = ImageLimits.max_megapixels
    max_bytes: int = ImageLimits.max_bytes

    def __post_init__(self) -> None:
        _check_output_format(self.output_format, ("png", "webp"))
        if self.channels not in ("rgba", "alpha"):
            raise InvalidRequest(f"channels must be 'rgba' or 'alpha', got {self.channels!r}")


Options = TypeVar("Options", ReplaceOptions, RemoveOptions)


@dataclass
class PipelineResult:
    images: list[bytes]
    info: dict[str, Any] = field(default_factory=dict)


def options_from_params(cls: type[Options], params: dict[str, Any]) -> Options:
    """Build options from a PARAMS JSON object, refusing unknown keys instead of ignoring them."""
    unknown = set(params) - {f.name for f in fields(cls)}
    if unknown:
        raise InvalidRequest(f"unknown parameters: {', '.join(sorted(unknown))}")
    return cls(**params)


def run_steps(steps: Steps, estimate_matte: EstimateMatte) -> PipelineResult:
    """Drive a pipeline's steps to the end with an in-process matting callable."""
    try:
        image = next(steps)
        while True:
            image = steps.send(estimate_matte(image))
    except StopIteration as finished:
        return finished.value


def replace_background(
    image: bytes, options: ReplaceOptions, estimate_matte: EstimateMatte, scene_image: bytes | None = None
) -> PipelineResult:
    """Lift the subject of `image` and put it in front of new scenes, one per output (seeds seed, seed+1, ...)."""
    return run_steps(replace_background_steps(image, options, scene_image), estimate_matte)


def remove_background(image: bytes, options: RemoveOptions, estimate_matte: EstimateMatte) -> PipelineResult:
    """Cut the subject out: an RGBA image with true alpha, or the 8-bit matte alone (`channels="alpha"`)."""
    return run_steps(remove_background_steps(image, options), estimate_matte)


def replace_background_steps(image: bytes, options: ReplaceOptions, scene_image: bytes | None = None) -> Steps:
    """The steps of `replace_background`."""
    timings: dict[str, float] = {}
    limits = ImageLimits(max_megapixels=options.max_megapixels, max_bytes=options.max_bytes)
    with _timed(timings, "decode"):
        decoded = decode_image(image, limits)
        reference = decode_image(scene_image, limits).rgb if scene_image is not None else None
    matte = yield from _matte_for(decoded, timings)
    height, width = matte.alpha.shape
    images, scene_engine, notes = [], "", []
    for index in range(options.num_outputs):
        seed = options.seed + index
        with _timed(timings, "scene"):
            spec = SceneSpec(prompt=options.scene_prompt, reference=reference, color=options.bg_color, seed=seed)
            scene = make_scene(spec, width, height)
        with _timed(timings, "compose"):
            composite = compose(decoded.rgb, matte, scene.rgb, preserve_shadow=options.preserve_shadow)
        with _timed(timings, "encode"):
            images.append(encode_image(composite, options.output_format))
        scene_engine, notes = scene.engine, [*scene.notes]
    unused = [name for name in GENERATION_PARAMETERS if getattr(options, name) is not None]
    if unused:
        notes.append(f"{', '.join(unused)}: only a diffusion scene engine uses these; {scene_engine} did not")
    info = _info(matte, timings, width, height, seed=options.seed, scene=scene_engine, notes=notes)
    return PipelineResult(images=images, info=info)


def remove_background_steps(image: bytes, options: RemoveOptions) -> Steps:
    """The steps of `remove_background`."""
    timings: dict[str, float] = {}
    limits = ImageLimits(max_megapixels=options.max_megapixels, max_bytes=options.max_bytes)
    with _timed(timings, "decode"):
        decoded = decode_image(image, limits)
    matte = yield from _matte_for(decoded, timings)
    with _timed(timings, "encode"):
        pixels = matte.alpha if options.channels == "alpha" else cutout(decoded.rgb, matte)
        encoded = encode_image(pixels, options.output_format)
    height, width = matte.alpha.shape
    return PipelineResult(images=[encoded], info=_info(matte, timings, width, height))


def matte_from_input_alpha(decoded: DecodedImage) -> Matte | None:
    """An input that already carries transparency is its own matte: nothing to estimate, nothing to guess."""
    if decoded.alpha is None or int(decoded.alpha.min()) == 255:
        return None
    return Matte(alpha=decoded.alpha, foreground=decoded.rgb, shading=None, engine="input-alpha", timings_ms={})


def _matte_for(decoded: DecodedImage, timings: dict[str, float]) -> Generator[np.ndarray, Matte, Matte]:
    matte = matte_from_input_alpha(decoded)
    if matte is None:
        with _timed(timings, "matting"):
            matte = yield decoded.rgb
    return matte


def _info(matte: Matte, timings: dict[str, float], width: int, height: int, **extra: Any) -> dict[str, Any]:
    engines = {"matting": matte.engine}
    scene = extra.pop("scene", None)
    if scene:
        engines["scene"] = scene
    rounded = {name: round(ms, 2) for name, ms in timings.items()}
    return {"engines": engines, "timings_ms": rounded, "width": width, "height": height, **extra}


def _check_output_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise InvalidRequest(f"output_format must be one of {', '.join(allowed)}, got {fmt!r}")


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000


__all__ = [
    "EstimateMatte",
    "PipelineResult",
    "RemoveOptions",
    "ReplaceOptions",
    "Steps",
    "options_from_params",
    "remove_background",
    "remove_background_steps",
    "replace_background",
    "replace_background_steps",
    "run_steps",
]
