"""Prompt and negative prompt -> the UNet's text conditioning, through the build's CLIP tokenizers and encoders."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import torch
from transformers import CLIPTokenizer

from replate.diffusion.build import Build
from replate.diffusion.components import Components


@dataclass(frozen=True)
class TextConditioning:
    hidden_states: torch.Tensor
    """(1, 77, D) encoder_hidden_states (SDXL: both encoders concatenated on the last axis)."""
    text_embeds: torch.Tensor | None
    """(1, P) SDXL's pooled embedding of encoder 2; None for SD."""


async def encode_prompts(
    build: Build, components: Components, prompt: str, negative_prompt: str | None, *, with_negative: bool
) -> tuple[TextConditioning, TextConditioning | None]:
    """(prompt, negative) conditioning, both in one encoder call; the negative is None without guidance.

    Like diffusers' pipelines, a missing negative prompt is the empty prompt for SD and zeros for SDXL (whose
    pipelines set `force_zeros_for_empty_prompt`)."""
    zero_negative = with_negative and negative_prompt is None and build.manifest.family == "sdxl"
    texts = [prompt, negative_prompt or ""] if with_negative and not zero_negative else [prompt]
    if build.manifest.family == "sdxl":
        hidden_1, encoded = await asyncio.gather(
            _encode(components, "diffusion_text_encoder", build.tokenizers[0], texts, ["hidden_states"]),
            _encode(
                components, "diffusion_text_encoder_2", build.tokenizers[1], texts, ["hidden_states", "text_embeds"]
            ),
        )
        hidden = torch.cat([hidden_1["hidden_states"], encoded["hidden_states"]], dim=-1)
        pooled: torch.Tensor | None = encoded["text_embeds"]
    else:
        encoded = await _encode(components, "diffusion_text_encoder", build.tokenizers[0], texts, ["hidden_states"])
        hidden, pooled = encoded["hidden_states"], None
    positive = TextConditioning(hidden[:1], pooled[:1] if pooled is not None else None)
    if not with_negative:
        return positive, None
    if zero_negative:
        return positive, TextConditioning(torch.zeros_like(positive.hidden_states), torch.zeros_like(pooled[:1]))
    return positive, TextConditioning(hidden[1:], pooled[1:] if pooled is not None else None)


async def _encode(
    components: Components, model: str, tokenizer: CLIPTokenizer, texts: list[str], outputs: list[str]
) -> dict[str, torch.Tensor]:
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    result = await components.infer(model, {"input_ids": np.asarray(ids, dtype=np.int64)}, outputs)
    return {name: torch.from_numpy(np.asarray(result[name], dtype=np.float32)) for name in outputs}
