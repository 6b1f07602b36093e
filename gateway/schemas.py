"""Request and response bodies of the HTTP API (they are the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SEED_MAX = 2**32 - 1


class ErrorDetail(BaseModel):
    code: str = Field(examples=["image_corrupt"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ReplaceBackgroundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_url: str = Field(description="The photo: a data URL (data:image/jpeg;base64,...) or bare base64.")
    scene_prompt: str | None = Field(None, max_length=2000, description="Describes the new scene.")
    scene_image_url: str | None = Field(None, description="A reference photo used as the new scene (data URL).")
    bg_color: str | None = Field(None, max_length=32, examples=["#ffffff"], description="A solid colour scene.")
    negative_prompt: str | None = Field(None, max_length=2000, description="Used by the diffusion engine only.")
    preserve_shadow: bool = Field(True, description="Carry the subject's cast shadow onto the new scene.")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="Random when omitted; echoed in the response.")
    num_outputs: int = Field(1, ge=1, le=4, description="Scenes to render (seed, seed+1, ...); charged per output.")
    output_format: Literal["png", "jpeg", "webp"] = "png"
    return_base64: bool = Field(False, description="Return data URLs and store nothing.")
    mode: Literal["fast", "balanced", "quality"] = "balanced"
    harmonize: float = Field(0.0, ge=0.0, le=1.0, description="Relight the subject to match the scene (0 = off).")


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


class RemoveBackgroundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="A data URL or bare base64.")
    channels: Literal["rgba", "alpha"] = "rgba"
    output_format: Literal["png", "webp"] = "png"
    return_base64: bool = False


class RemoveBackgroundBase64Response(BaseModel):
    image: str
    width: int
    height: int
    credits_charged: int
    engines: dict[str, str]


class CreditsResponse(BaseModel):
    balance: int
    held: int
    available: int
