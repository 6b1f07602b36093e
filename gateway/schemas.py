"""Request and response bodies of the HTTP API (they are the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SEED_MAX = 2**32 - 1


class Strict(BaseModel):
    """Unknown fields are refused (422 naming them), so that a misspelt option is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["image_corrupt"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class RemoveBgError(BaseModel):
    title: str
    code: str


class RemoveBgErrorBody(BaseModel):
    """remove.bg's error shape, used by /v1.0/removebg only."""

    errors: list[RemoveBgError]


class ReplaceBackgroundRequest(Strict):
    image_url: str = Field(description="The photo: an http(s) URL, a data URL (data:image/jpeg;base64,...) or base64.")
    scene_prompt: str | None = Field(None, max_length=2000, description="Describes the new scene.")
    scene_image_url: str | None = Field(None, description="A reference photo for the new scene (URL or data URL).")
    bg_color: str | None = Field(None, max_length=32, examples=["#ffffff"], description="A solid colour scene.")
    negative_prompt: str | None = Field(None, max_length=2000, description="Used by a diffusion scene engine only.")
    preserve_shadow: bool = Field(True, description="Carry the subject's cast shadow onto the new scene.")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="Random when omitted; echoed in the response.")
    num_outputs: int = Field(1, ge=1, le=4, description="Scenes to render (seed, seed+1, ...); charged per output.")
    output_format: Literal["png", "jpeg", "webp"] = "png"
    return_base64: bool = Field(False, description="Return data URLs and store nothing.")
    mode: Literal["fast", "balanced", "quality"] | None = Field(
        None,
        description="Speed against quality of a generated scene (steps and working resolution); the diffusion "
        "engine's default, balanced, when omitted. Used by a diffusion scene engine only.",
    )
    harmonize: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Match the subject to the scene's light: white balance and exposure, a soft shading towards the "
        "scene's light direction, light wrap, grain and edge softness, in proportion (0 = off: subject pixels with "
        "alpha 255 stay bit-exact).",
    )
    shadow: Literal["none", "contact", "cast"] | None = Field(
        None,
        description="A shadow synthesised from the matte and the scene's light when the photo has none to carry "
        "(see preserve_shadow): a soft contact shadow where the subject meets the floor, or that plus a cast shadow "
        "laid on the floor away from the light. Default: contact on studio scenes (they have a floor), none on "
        "colours, reference photos and generated scenes. Shadows only darken the scene, never the subject.",
    )


class LightDirection(BaseModel):
    azimuth_deg: float = Field(
        description="Where the light comes from in the image plane, counter-clockwise from the right: 0 from the "
        "right, 90 from above, 180 from the left, 270 from below."
    )
    strength: float = Field(description="How directional the light is: 0 (no dominant direction) to 1.")


class Lighting(BaseModel):
    """What was estimated and done for one output."""

    scene: LightDirection = Field(description="The scene's light, from the plate's brightness.")
    subject: LightDirection = Field(description="The light on the subject in the photo, from its shading.")
    shadow: Literal["none", "contact", "cast", "carried"] = Field(
        description="The shadow on the output: synthesised (contact, cast), the photo's own (carried), or none."
    )
    harmonize: float


class ReplaceBackgroundResponse(BaseModel):
    id: str
    status: Literal["succeeded"] = "succeeded"
    output_url: str
    outputs: list[str]
    width: int
    height: int
    seed: int
    credits_charged: int
    engines: dict[str, str] = Field(examples=[{"matting": "studio", "scene": "studio"}])
    timings_ms: dict[str, float]
    notes: list[str] = Field(default_factory=list, description="Honest remarks, e.g. an option an engine ignored.")
    lighting: list[Lighting] = Field(
        default_factory=list,
        description="Per output, in order: the light directions estimated and the shadow made. Empty when neither "
        "harmonisation nor a shadow was asked for (or defaulted to), since nothing was estimated.",
    )


class RemoveBackgroundRequest(Strict):
    image: str = Field(description="An http(s) URL, a data URL or base64. Multipart uploads send `file` instead.")
    channels: Literal["rgba", "alpha"] = "rgba"
    output_format: Literal["png", "webp"] = "png"
    return_base64: bool = False


class RemoveBackgroundBase64Response(BaseModel):
    image: str
    width: int
    height: int
    credits_charged: int
    engines: dict[str, str]


class BgReplaceRequest(Strict):
    """Segmind-style background replacement: image bytes out (or base64 JSON)."""

    image: str = Field(description="The photo: URL, data URL or base64.")
    ref_image: str | None = Field(None, description="A reference scene photo: URL, data URL or base64.")
    prompt: str | None = Field(None, max_length=2000)
    negative_prompt: str | None = Field(None, max_length=2000)
    samples: int = Field(1, ge=1, le=4)
    scheduler: str | None = Field(None, max_length=64, description="Diffusion engine only.")
    num_inference_steps: int | None = Field(None, ge=20, le=100, description="Diffusion engine only.")
    guidance_scale: float | None = Field(None, ge=1, le=25, description="Diffusion engine only.")
    seed: int = Field(-1, ge=-1, le=SEED_MAX, description="-1 picks a random seed.")
    strength: float | None = Field(None, ge=0, le=1, description="Diffusion engine only.")
    cn_weight: float | None = Field(None, ge=0, le=1, description="Diffusion engine only.")
    ip_adapter_weight: float | None = Field(None, ge=0, le=1, description="Diffusion engine only.")
    base64: bool = Field(False, description="Return JSON with base64 instead of image bytes.")


class BgReplaceBase64Response(BaseModel):
    image: str | None = None
    images: list[str] | None = None


class RunRequest(Strict):
    model: Literal["background-change", "remove-background"]
    image: str = Field(description="URL, data URL or base64.")
    prompt: str | None = Field(None, max_length=2000, description="The new scene (background-change).")
    seed: int = Field(42, ge=0, le=SEED_MAX)
    output_format: Literal["png", "jpeg"] = "png"
    return_base64: bool = Field(False, description="Output as a data URL, handed over once and not kept.")


class PredictionError(BaseModel):
    code: str
    message: str


class PredictionResponse(BaseModel):
    id: str
    model: str
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    output: list[str] | None = Field(None, description="URLs or data URLs once succeeded.")
    error: PredictionError | None = None
    credits_charged: int = 0
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: dict[str, float] = Field(default_factory=dict, examples=[{"predict_time": 0.41}])
    urls: dict[str, str] = Field(default_factory=dict)


class CreditsResponse(BaseModel):
    balance: int
    held: int
    available: int
