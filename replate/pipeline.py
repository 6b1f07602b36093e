"""The two products of replate as pure functions: encoded bytes in, encoded bytes out.

Each pipeline is written once, as steps: a generator that decodes, yields the image it needs a matte for, receives
the Matte, and returns the result (sans-I/O, so nothing here knows where mattes come from). A replace pipeline
whose scene is generated also yields a `SceneJob` and is sent the `ScenePlates`. `run_steps` drives it with
in-process callables (CLI, tests); the Triton adapters drive a whole batch of them and ask the dynamically batched
`matting` model for all their mattes at once, then `scene_diffusion` for every generated scene concurrently.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

import numpy as np

from replate.compose import cutout
from replate.errors import InvalidRequest
from replate.harmonize import HARMONIZER, Placement, check_placement, place_subject
from replate.imageio import OUTPUT_FORMATS, DecodedImage, ImageLimits, decode_image, encode_image
from replate.matting import Matte
from replate.scene import SceneSpec, make_scene
from replate.timing import timed


@dataclass(frozen=True)
class SceneJob:
    """A scene to generate around a subject: image uint8 (H, W, 3) RGB, alpha uint8 (H, W) its matte, reference
    uint8 (h, w, 3) RGB or None, params the generation parameters (replate.diffusion.SceneRequest's field names)."""

    image: np.ndarray
    alpha: np.ndarray
    reference: np.ndarray | None
    params: dict[str, Any]


@dataclass(frozen=True)
class ScenePlates:
    """The answer to a SceneJob: one plate uint8 (H, W, 3) RGB per output, and what the generator says of them
    (its `engine` name first)."""

    plates: list[np.ndarray]
    info: dict[str, Any]


EstimateMatte = Callable[[np.ndarray], Matte]
"""image uint8 (H, W, 3) RGB -> Matte."""
GenerateScenes = Callable[[SceneJob], ScenePlates]
Steps = Generator[np.ndarray | SceneJob, Matte | ScenePlates, "PipelineResult"]
"""Yields the image uint8 (H, W, 3) RGB that needs a matte (then, for a generated scene, a SceneJob), is sent the
Matte (then the ScenePlates), returns the PipelineResult."""

MAX_OUTPUTS = 4


GENERATION_PARAMETERS = (
    "negative_prompt",
    "scheduler",
    "num_inference_steps",
    "guidance_scale",
    "strength",
    "cn_weight",
    "ip_adapter_weight",
    "mode",
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
    mode: str | None = None
    harmonize: float = 0.0
    shadow: str | None = None
    """"none", "contact", "cast", or None for the scene engine's default (replate.harmonize.default_shadow)."""

    def __post_init__(self) -> None:
        _check_output_format(self.output_format, OUTPUT_FORMATS)
        check_placement(self.harmonize, self.shadow)
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


def run_steps(
    steps: Steps, estimate_matte: EstimateMatte, generate_scenes: GenerateScenes | None = None
) -> PipelineResult:
    """Drive a pipeline's steps to the end with in-process callables (`generate_scenes` only for pipelines started
    with a scene generator)."""
    try:
        asked = next(steps)
        while True:
            if isinstance(asked, SceneJob):
                if generate_scenes is None:
                    raise ValueError("the pipeline asked for a generated scene, and no generator was given")
                asked = steps.send(generate_scenes(asked))
            else:
                asked = steps.send(estimate_matte(asked))
    except StopIteration as finished:
        return finished.value


def replace_background(
    image: bytes,
    options: ReplaceOptions,
    estimate_matte: EstimateMatte,
    scene_image: bytes | None = None,
    generate_scenes: GenerateScenes | None = None,
) -> PipelineResult:
    """Lift the subject of `image` and put it in front of new scenes, one per output (seeds seed, seed+1, ...);
    a prompted scene is generated by `generate_scenes` when one is given, else drawn by the studio engine."""
    steps = replace_background_steps(image, options, scene_image, generates_scenes=generate_scenes is not None)
    return run_steps(steps, estimate_matte, generate_scenes)


def remove_background(image: bytes, options: RemoveOptions, estimate_matte: EstimateMatte) -> PipelineResult:
    """Cut the subject out: an RGBA image with true alpha, or the 8-bit matte alone (`channels="alpha"`)."""
    return run_steps(remove_background_steps(image, options), estimate_matte)


def replace_background_steps(
    image: bytes, options: ReplaceOptions, scene_image: bytes | None = None, *, generates_scenes: bool = False
) -> Steps:
    """The steps of `replace_background`. With `generates_scenes` (a diffusion build is loaded), a request with a
    prompt and no colour yields a SceneJob for its scenes; otherwise the scene engines of `replate.scene` draw them."""
    timings: dict[str, float] = {}
    limits = ImageLimits(max_megapixels=options.max_megapixels, max_bytes=options.max_bytes)
    with timed(timings, "decode"):
        decoded = decode_image(image, limits)
        reference = decode_image(scene_image, limits).rgb if scene_image is not None else None
    matte = yield from _matte_for(decoded, timings)
    height, width = matte.alpha.shape
    if generates_scenes and options.bg_color is None and (options.scene_prompt or "").strip():
        with timed(timings, "scene"):
            generated = yield SceneJob(decoded.rgb, matte.alpha, reference, _generation_params(options))
        plates, scene_engine, notes = generated.plates, generated.info["engine"], list(generated.info.get("notes", []))
        extra = {"generation": {k: v for k, v in generated.info.items() if k not in ("engine", "notes")}}
    else:
        plates, scene_engine, notes = _drawn_scenes(options, reference, width, height, timings, generates_scenes)
        extra = {}
    images, lighting = [], []
    for index, plate in enumerate(plates):
        placement = Placement(
            harmonize=options.harmonize,
            shadow=options.shadow,
            preserve_shadow=options.preserve_shadow,
            seed=options.seed + index,
        )
        placed = place_subject(decoded.rgb, matte, plate, placement, scene_engine)
        for stage, ms in placed.timings_ms.items():
            timings[stage] = timings.get(stage, 0.0) + ms
        notes += [note for note in placed.notes if note not in notes]
        if placed.lighting is not None:
            lighting.append(placed.lighting)
        with timed(timings, "encode"):
            images.append(encode_image(placed.rgb, options.output_format))
    if lighting:
        extra["lighting"] = lighting
    harmonizer = HARMONIZER if options.harmonize > 0 else None
    info = _info(
        matte, timings, width, height, seed=options.seed, scene=scene_engine, harmonize=harmonizer, notes=notes, **extra
    )
    return PipelineResult(images=images, info=info)


def _generation_params(options: ReplaceOptions) -> dict[str, Any]:
    """The SceneRequest fields of options; those the client left unset are left out, so the generator's defaults
    (per `mode`) apply."""
    params = {"prompt": options.scene_prompt, "seed": options.seed, "num_outputs": options.num_outputs}
    params |= {name: getattr(options, name) for name in GENERATION_PARAMETERS if getattr(options, name) is not None}
    return params


def _drawn_scenes(
    options: ReplaceOptions,
    reference: np.ndarray | None,
    width: int,
    height: int,
    timings: dict[str, float],
    generates_scenes: bool,
) -> tuple[list[np.ndarray], str, list[str]]:
    """(plates, engine, notes) from the classical scene engines, one plate per output (seeds seed, seed+1, ...)."""
    plates, scene_engine, notes = [], "", []
    for index in range(options.num_outputs):
        with timed(timings, "scene"):
            spec = SceneSpec(
                prompt=options.scene_prompt, reference=reference, color=options.bg_color, seed=options.seed + index
            )
            scene = make_scene(spec, width, height)
        plates.append(scene.rgb)
        scene_engine, notes = scene.engine, [*scene.notes]
    unused = [name for name in GENERATION_PARAMETERS if getattr(options, name) is not None]
    if unused:
        why = "it was not asked for a prompted scene" if generates_scenes else "no diffusion build is loaded"
        notes.append(f"{', '.join(unused)}: only a diffusion scene engine uses these; {scene_engine} did not ({why})")
    return plates, scene_engine, notes


def remove_background_steps(image: bytes, options: RemoveOptions) -> Steps:
    """The steps of `remove_background`."""
    timings: dict[str, float] = {}
    limits = ImageLimits(max_megapixels=options.max_megapixels, max_bytes=options.max_bytes)
    with timed(timings, "decode"):
        decoded = decode_image(image, limits)
    matte = yield from _matte_for(decoded, timings)
    with timed(timings, "encode"):
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
        with timed(timings, "matting"):
            matte = yield decoded.rgb
    return matte


def _info(matte: Matte, timings: dict[str, float], width: int, height: int, **extra: Any) -> dict[str, Any]:
    engines = {"matting": matte.engine}
    for stage in ("scene", "harmonize"):
        engine = extra.pop(stage, None)
        if engine:
            engines[stage] = engine
    rounded = {name: round(ms, 2) for name, ms in timings.items()}
    return {"engines": engines, "timings_ms": rounded, "width": width, "height": height, **extra}


def _check_output_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise InvalidRequest(f"output_format must be one of {', '.join(allowed)}, got {fmt!r}")


__all__ = [
    "EstimateMatte",
    "GenerateScenes",
    "PipelineResult",
    "RemoveOptions",
    "ReplaceOptions",
    "SceneJob",
    "ScenePlates",
    "Steps",
    "options_from_params",
    "remove_background",
    "remove_background_steps",
    "replace_background",
    "replace_background_steps",
    "run_steps",
]
