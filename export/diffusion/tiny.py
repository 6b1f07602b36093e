"""Tiny random models of the real diffusion architectures, saved as the operator's folders would be.

`build_tiny(dst, "sd" | "sdxl")` writes three folders that `export.diffusion` and the `scene_diffusion` tests load
exactly like real weights (`from_pretrained(..., local_files_only=True)`):

    <dst>/pipeline/     an inpainting pipeline (model_index.json, unet/ with 9 input channels, vae/, text_encoder/,
                        tokenizer/, scheduler/; SDXL adds text_encoder_2/ and tokenizer_2/)
    <dst>/controlnet/   a ControlNetModel matching the UNet (4 input channels), kind recorded in replate.json
    <dst>/ip_adapter/   image_encoder/ (CLIPVisionModelWithProjection) and ip-adapter.safetensors, the layout of
                        diffusers' `load_ip_adapter` ("image_proj.*" and "ip_adapter.<id>.to_{k,v}_ip.weight")

Channels are tiny, but the VAE keeps the real factor 8 and the ControlNet the real residual layout, so every shape
rule of docs/diffusion.md holds. Random weights: the outputs are noise, the shapes and the numerics are real.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

__all__ = ["CONTROLNET_KIND_FILE", "IP_ADAPTER_WEIGHTS", "TinyModels", "build_tiny", "save_ip_adapter"]

Family = Literal["sd", "sdxl"]
IP_ADAPTER_WEIGHTS = "ip-adapter.safetensors"
CONTROLNET_KIND_FILE = "replate.json"  # {"kind": "canny" | "depth"}: hub ControlNet folders do not say which
_TEXT_WIDTH = 32  # hidden size of each tiny text encoder; SDXL's UNet sees both concatenated
_PROJECTION_DIM = 32  # SDXL text_embeds and the image encoder's image_embeds
_TIME_EMBED_DIM = 8
_IP_TOKENS = 4  # diffusers reads every plain IP-Adapter as 4 tokens
_WORDS = ("a", "photo", "of", "the", "beach", "studio", "forest", "city", "at", "night", "sunset", "in")


@dataclass(frozen=True)
class TinyModels:
    """The three folders `build_tiny` wrote."""

    pipeline: Path
    controlnet: Path
    ip_adapter: Path


def build_tiny(dst: Path, family: Family, *, seed: int = 0) -> TinyModels:
    """Write a tiny random inpainting pipeline, ControlNet ('canny') and IP-Adapter of `family` under dst."""
    if family not in ("sd", "sdxl"):
        raise ValueError(f"family must be 'sd' or 'sdxl', got {family!r}")
    dst = Path(dst)
    models = TinyModels(dst / "pipeline", dst / "controlnet", dst / "ip_adapter")
    torch.manual_seed(seed)
    unet = _unet(family)
    _save_pipeline(models.pipeline, family, unet)
    _save_controlnet(models.controlnet, unet)
    save_ip_adapter(models.ip_adapter, unet)
    return models


def _unet(family: Family) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    sdxl = {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": _TIME_EMBED_DIM,
        "projection_class_embeddings_input_dim": 6 * _TIME_EMBED_DIM + _PROJECTION_DIM,
        "use_linear_projection": True,
    }
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=9,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=_TEXT_WIDTH * (2 if family == "sdxl" else 1),
        attention_head_dim=(2, 4),
        norm_num_groups=8,
        **(sdxl if family == "sdxl" else {}),
    )


def _save_pipeline(dst: Path, family: Family, unet: torch.nn.Module) -> None:
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        EulerDiscreteScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLInpaintPipeline,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),  # four levels: the real downsampling factor 8
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.13025 if family == "sdxl" else 0.18215,
    )
    tokenizer = _tokenizer(dst / "tokenizer")  # vocab.json, merges.txt: save_pretrained adds tokenizer.json
    schedule = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}
    if family == "sd":
        scheduler = DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **schedule)
        pipeline = StableDiffusionInpaintPipeline(
            vae=vae,
            text_encoder=CLIPTextModel(_text_config(tokenizer)),
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    else:
        pipeline = StableDiffusionXLInpaintPipeline(
            vae=vae,
            text_encoder=CLIPTextModel(_text_config(tokenizer)),
            text_encoder_2=CLIPTextModelWithProjection(_text_config(tokenizer)),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=EulerDiscreteScheduler(**schedule),
        )
    pipeline.save_pretrained(dst)
    if family == "sdxl":
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(dst / "tokenizer" / name, dst / "tokenizer_2" / name)


def _text_config(tokenizer: object) -> object:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=_TEXT_WIDTH,
        intermediate_size=37,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=_PROJECTION_DIM,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tokenizer(folder: Path) -> object:
    """A CLIP byte-level BPE tokenizer over the 256 byte symbols plus a few merged words; 77 tokens as CLIP's."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate([*symbols, *(f"{s}</w>" for s in symbols)])}
    merges = []
    for word in _WORDS:
        pieces = [*word[:-1], f"{word[-1]}</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)


def _save_controlnet(dst: Path, unet: torch.nn.Module) -> None:
    from diffusers import ControlNetModel

    config = unet.config
    controlnet = ControlNetModel(
        in_channels=4,  # the noisy latent alone; the UNet's 9 channels add mask and masked image
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=config.down_block_types,
        cross_attention_dim=config.cross_attention_dim,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        use_linear_projection=config.use_linear_projection,
        addition_embed_type=config.addition_embed_type,
        addition_time_embed_dim=config.addition_time_embed_dim,
        projection_class_embeddings_input_dim=config.projection_class_embeddings_input_dim,
        conditioning_embedding_out_channels=(8, 8, 16, 16),  # three stride-2 steps: pixels to latent size
    )
    with torch.no_grad():  # zero convolutions are diffusers' start of training; parity checks need signal
        for parameter in controlnet.parameters():
            if not parameter.any():
                parameter.normal_(std=0.1)
    controlnet.save_pretrained(dst)
    (dst / CONTROLNET_KIND_FILE).write_text(json.dumps({"kind": "canny"}))


def save_ip_adapter(dst: Path, unet: torch.nn.Module) -> None:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=_PROJECTION_DIM,
    )
    CLIPVisionModelWithProjection(vision).save_pretrained(dst / "image_encoder")
    cross_attention_dim = unet.config.cross_attention_dim
    projection = ImageProjection(_PROJECTION_DIM, cross_attention_dim, _IP_TOKENS)
    weights = {f"image_proj.{k.replace('image_embeds', 'proj')}": v for k, v in projection.state_dict().items()}
    # The original IP-Adapter numbers every attention processor and keeps weights for the cross-attention ones (odd
    # ids, in `attn_processors` order): the numbering diffusers' converter expects.
    cross_attentions = [name for name in unet.attn_processors if not name.endswith("attn1.processor")]
    for index, name in enumerate(cross_attentions):
        hidden_size = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
        processor = IPAdapterAttnProcessor2_0(hidden_size, cross_attention_dim, num_tokens=(_IP_TOKENS,))
        for kind in ("k", "v"):
            weights[f"ip_adapter.{2 * index + 1}.to_{kind}_ip.weight"] = getattr(processor, f"to_{kind}_ip")[0].weight
    save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(dst / IP_ADAPTER_WEIGHTS))
