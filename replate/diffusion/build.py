"""The build folder `python -m export.diffusion` writes, as the loop needs it: manifest, tokenizers, scheduler config.

Layout and field meanings: docs/diffusion.md. Loaded once per process (Triton `initialize`, CLI start), then shared
read-only by every request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from transformers import CLIPTokenizer

from replate.errors import Unavailable

MANIFEST = "diffusion.json"


@dataclass(frozen=True)
class ControlNetSpec:
    kind: str
    residuals: int


@dataclass(frozen=True)
class IPAdapterSpec:
    image_size: int
    tokens: int


@dataclass(frozen=True)
class Manifest:
    family: Literal["sd", "sdxl"]
    engine: str
    vae_scale_factor: int
    latent_channels: int
    text_max_length: int
    default_size: int
    controlnet: ControlNetSpec | None
    ip_adapter: IPAdapterSpec | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        controlnet, ip_adapter = data.get("controlnet"), data.get("ip_adapter")
        return cls(
            family=data["family"],
            engine=data["engine"],
            vae_scale_factor=int(data["vae_scale_factor"]),
            latent_channels=int(data["latent_channels"]),
            text_max_length=int(data["text_max_length"]),
            default_size=int(data["default_size"]),
            controlnet=ControlNetSpec(controlnet["kind"], int(controlnet["residuals"])) if controlnet else None,
            ip_adapter=IPAdapterSpec(int(ip_adapter["image_size"]), int(ip_adapter["tokens"])) if ip_adapter else None,
        )


@dataclass(frozen=True)
class Build:
    path: Path
    manifest: Manifest
    tokenizers: tuple[CLIPTokenizer, ...]
    """One per text encoder: (tokenizer,) for SD, (tokenizer, tokenizer_2) for SDXL."""
    scheduler_config: dict[str, Any]


def load_build(path: Path) -> Build:
    """Read a build folder; Unavailable when it is missing or incomplete (an operator's setup error)."""
    try:
        data = json.loads((path / MANIFEST).read_text())
        manifest = Manifest.from_dict(data)
        folders = ("tokenizer", "tokenizer_2") if manifest.family == "sdxl" else ("tokenizer",)
        tokenizers = tuple(CLIPTokenizer.from_pretrained(_asset(path, data, folder)) for folder in folders)
        scheduler_config = json.loads((_asset(path, data, "scheduler") / "scheduler_config.json").read_text())
    except (OSError, KeyError, ValueError) as exc:
        message = f"the diffusion build folder {path} is incomplete ({exc}): run `python -m export.diffusion`"
        raise Unavailable(message) from exc
    return Build(path=path, manifest=manifest, tokenizers=tokenizers, scheduler_config=scheduler_config)


def _asset(path: Path, data: dict[str, Any], name: str) -> Path:
    """The manifest's `assets` say where tokenizer(s) and scheduler config live (the exporter puts them inside
    scene_diffusion/, since Triton refuses non-model folders at the top of a repository); else `<build>/<name>`."""
    return path / data.get("assets", {}).get(name, name)
