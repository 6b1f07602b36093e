"""Scenes: the new background plate a subject is composed onto.

Engines are small objects behind the `SceneEngine` protocol, listed in the explicit `ENGINES` registry; adding one
is a module plus a line here. `make_scene` validates the request, picks the engine and says honestly, in
`Scene.notes`, what was not used.
"""

from __future__ import annotations

from replate.errors import ConflictingSceneSources, InvalidRequest
from replate.scene._spec import Scene, SceneEngine, SceneSpec
from replate.scene.color import ColorScene, parse_color
from replate.scene.reference import ReferenceScene
from replate.scene.studio import StudioScene

__all__ = ["ENGINES", "Scene", "SceneEngine", "SceneSpec", "check_scene_sources", "make_scene"]

ENGINES: dict[str, SceneEngine] = {
    "color": ColorScene(),
    "reference": ReferenceScene(),
    "studio": StudioScene(),
}


def make_scene(spec: SceneSpec, width: int, height: int) -> Scene:
    """A plate uint8 (height, width, 3) RGB for spec; raises InvalidRequest or ConflictingSceneSources."""
    _check_inputs(spec, width, height)
    if spec.color is not None:
        return ENGINES["color"].render(spec, width, height)
    if spec.reference is not None:
        scene = ENGINES["reference"].render(spec, width, height)
        if spec.prompt is None:
            return scene
        note = (
            "the reference image was used as the scene as is; scene_prompt was not applied: a prompted scene guided "
            "by a reference needs a diffusion engine, and none is loaded on this server"
        )
        return Scene(rgb=scene.rgb, engine=scene.engine, notes=(*scene.notes, note))
    return ENGINES["studio"].render(spec, width, height)


def check_scene_sources(prompt: str | None, has_reference: bool, color: str | None) -> None:
    """Exactly one kind of scene source: a colour, or a prompt and/or a reference photo; the colour must parse.
    Callers that admit requests run this before any work, so a bad combination costs nothing."""
    has_prompt = prompt is not None and prompt.strip() != ""
    if not (has_prompt or has_reference or color is not None):
        raise InvalidRequest("at least one of scene_prompt, scene_image_url, bg_color is required")
    if color is not None and (has_prompt or has_reference):
        raise ConflictingSceneSources(
            "bg_color cannot be combined with scene_prompt or scene_image_url: send either a colour or a scene"
        )
    if color is not None:
        parse_color(color)


def _check_inputs(spec: SceneSpec, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"scene size must be positive, got {width}x{height}")
    check_scene_sources(spec.prompt, spec.reference is not None, spec.color)
