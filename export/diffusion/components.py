"""The diffusion stage's components as torch modules whose inputs and outputs are exactly docs/diffusion.md's tensors.

Each `Component` is loaded from the operator's diffusers folders (`from_pretrained(..., local_files_only=True)`),
declares its tensors once (`inputs`, `outputs`: name -> `TensorSpec`), and is both what `export.diffusion` traces
to ONNX and the PyTorch reference of the Triton models:

    unet = UNet.load(pipeline_dir, controlnet=True, ip_adapter=ip_dir)
    outputs = unet.run({"sample": ..., "timestep": ..., ...})   # {"noise_pred": tensor}

`forward(*tensors)` takes the inputs positionally in `inputs` order and returns a tuple in `outputs` order (the
form the ONNX tracer needs). Shapes use the symbolic axes of the contract: B batch, h/w latent, H/W pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from export.diffusion.tiny import CONTROLNET_KIND_FILE, IP_ADAPTER_WEIGHTS

__all__ = [
    "Axis",
    "Component",
    "ControlNet",
    "ImageEncoder",
    "TensorSpec",
    "TextEncoder",
    "UNet",
    "VaeDecoder",
    "VaeEncoder",
    "axis_sizes",
    "controlnet_kind",
    "example_inputs",
    "family_of",
    "ip_adapter_weights_file",
    "iter_components",
    "load_components",
    "load_ip_adapter_weights",
    "residual_specs",
]

Family = Literal["sd", "sdxl"]
TEXT_LENGTH = 77


@dataclass(frozen=True)
class Axis:
    """A dynamic dimension: `name` (B, h, w, H, W) divided by `divisor` (UNet levels below the latent)."""

    name: str
    divisor: int = 1

    def __str__(self) -> str:
        return self.name if self.divisor == 1 else f"{self.name}/{self.divisor}"

    def size(self, sizes: Mapping[str, int]) -> int:
        return sizes[self.name] // self.divisor


BATCH, LATENT_H, LATENT_W, IMAGE_H, IMAGE_W = Axis("B"), Axis("h"), Axis("w"), Axis("H"), Axis("W")


@dataclass(frozen=True)
class TensorSpec:
    """dtype (numpy name, "float32" or "int64"), shape (ints and Axes; the first is always B), and the range
    random examples are drawn from (the range the pipeline feeds)."""

    dtype: str
    shape: tuple[int | Axis, ...]
    example_range: tuple[float, float] = (-1.0, 1.0)

    def concrete(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(d.size(sizes) if isinstance(d, Axis) else d for d in self.shape)

    def as_json(self) -> dict[str, object]:
        return {"dtype": self.dtype, "shape": [d if isinstance(d, int) else str(d) for d in self.shape]}


def axis_sizes(batch: int, height_px: int, width_px: int, vae_scale_factor: int = 8) -> dict[str, int]:
    """The sizes of B, H, W, h, w for a batch of images of height_px x width_px."""
    return {
        "B": batch,
        "H": height_px,
        "W": width_px,
        "h": height_px // vae_scale_factor,
        "w": width_px // vae_scale_factor,
    }


class Component(nn.Module):
    """One Triton model of the contract: `name`, typed `inputs` and `outputs` (in positional order)."""

    name: ClassVar[str]
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def run(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Call with named inputs (extra names are ignored), get named outputs; no gradients."""
        with torch.no_grad():
            results = self(*(tensors[name] for name in self.inputs))
        return dict(zip(self.outputs, results, strict=True))


def example_inputs(component: Component, sizes: Mapping[str, int], *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs of the component's specs at `sizes` (see `axis_sizes`), uniform in each example_range."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, spec in component.inputs.items():
        low, high = spec.example_range
        shape = spec.concrete(sizes)
        if spec.dtype == "int64":
            tensors[name] = torch.randint(int(low), int(high), shape, generator=generator)
        else:
            tensors[name] = low + (high - low) * torch.rand(shape, generator=generator)
    return tensors


def family_of(pipeline_dir: Path) -> Family:
    """ "sdxl" when the pipeline has a second text encoder, else "sd"."""
    index = json.loads((Path(pipeline_dir) / "model_index.json").read_text())
    return "sdxl" if "text_encoder_2" in index else "sd"


def controlnet_kind(controlnet_dir: Path) -> str | None:
    """The kind ("canny", "depth") recorded in the ControlNet folder's replate.json, or None."""
    path = Path(controlnet_dir) / CONTROLNET_KIND_FILE
    return json.loads(path.read_text())["kind"] if path.is_file() else None


def _sdxl_conditioning(projection_dim: int) -> dict[str, TensorSpec]:
    return {
        "text_embeds": TensorSpec("float32", (BATCH, projection_dim)),
        "time_ids": TensorSpec("float32", (BATCH, 6)),
    }


_TIMESTEP = TensorSpec("float32", (BATCH,), (0.0, 999.0))
_UNIT_SCALE = TensorSpec("float32", (BATCH,), (0.0, 1.0))


class TextEncoder(Component):
    """`diffusion_text_encoder` (input_ids -> hidden_states) and, for SDXL, `diffusion_text_encoder_2` (also
    text_embeds). hidden_states is what the pipeline feeds the UNet: SD's last hidden state, SDXL's penultimate."""

    def __init__(self, encoder: nn.Module, *, second: bool, penultimate: bool) -> None:
        super().__init__()
        self.name = "diffusion_text_encoder_2" if second else "diffusion_text_encoder"
        self.encoder = encoder.eval()
        self.penultimate = penultimate
        config = encoder.config
        self.inputs = {"input_ids": TensorSpec("int64", (BATCH, TEXT_LENGTH), (0, config.vocab_size))}
        self.outputs = {"hidden_states": TensorSpec("float32", (BATCH, TEXT_LENGTH, config.hidden_size))}
        if second:
            self.outputs["text_embeds"] = TensorSpec("float32", (BATCH, config.projection_dim))

    @classmethod
    def load(cls, pipeline_dir: Path, *, second: bool = False) -> TextEncoder:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        model_class = CLIPTextModelWithProjection if second else CLIPTextModel
        subfolder = "text_encoder_2" if second else "text_encoder"
        # eager attention: the legacy ONNX exporter traces it; the SDPA path builds its mask with ops it cannot
        encoder = model_class.from_pretrained(
            pipeline_dir, subfolder=subfolder, local_files_only=True, attn_implementation="eager"
        )
        return cls(encoder, second=second, penultimate=family_of(pipeline_dir) == "sdxl")

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.encoder(input_ids, output_hidden_states=self.penultimate)
        hidden_states = result.hidden_states[-2] if self.penultimate else result.last_hidden_state
        if "text_embeds" in self.outputs:
            return hidden_states, result.text_embeds
        return (hidden_states,)


def residual_specs(model: nn.Module) -> dict[str, TensorSpec]:
    """The ControlNet residuals of a UNet (or produced by a ControlNet, which mirrors its down path), read from
    the modules: `down_residual_<i>` (conv_in, then every down-block resnet and downsampler) and `mid_residual`."""
    levels = [(model.conv_in.out_channels, 1)]
    divisor = 1
    for block in model.down_blocks:
        levels += [(resnet.out_channels, divisor) for resnet in block.resnets]
        if block.downsamplers:
            divisor *= 2
            levels.append((block.downsamplers[0].out_channels, divisor))
    levels.append((model.mid_block.resnets[-1].out_channels, divisor))
    names = [*(f"down_residual_{i}" for i in range(len(levels) - 1)), "mid_residual"]
    return {
        name: TensorSpec("float32", (BATCH, channels, Axis("h", d), Axis("w", d)))
        for name, (channels, d) in zip(names, levels, strict=True)
    }


def _sdxl_projection_dim(model: nn.Module) -> int | None:
    """P of SDXL's text_embeds, from the UNet / ControlNet config; None without the text_time conditioning."""
    config = model.config
    if config.addition_embed_type != "text_time":
        return None
    return config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim


def _added_conditioning(named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: named[key] for key in ("text_embeds", "time_ids") if key in named}


class UNet(Component):
    """`diffusion_unet`: the inpainting UNet, one denoising prediction. With `controlnet` it also takes the
    residuals `down_residual_<i>` and `mid_residual` (zeros: no ControlNet effect); with an IP-Adapter it takes
    `ip_tokens` (from `ImageEncoder`) and `ip_scale` [B] (0 disables the adapter for that batch item)."""

    name = "diffusion_unet"

    def __init__(self, unet: nn.Module, *, controlnet: bool, ip_adapter: Mapping[str, dict] | None = None) -> None:
        super().__init__()
        self.unet = unet.eval()
        config = unet.config
        latent = (LATENT_H, LATENT_W)
        self.inputs = {
            "sample": TensorSpec("float32", (BATCH, config.in_channels, *latent)),
            "timestep": _TIMESTEP,
            "encoder_hidden_states": TensorSpec("float32", (BATCH, TEXT_LENGTH, config.cross_attention_dim)),
        }
        projection_dim = _sdxl_projection_dim(unet)
        if projection_dim is not None:
            self.inputs |= _sdxl_conditioning(projection_dim)
        if controlnet:
            self.inputs |= residual_specs(unet)
        if ip_adapter is not None:
            tokens = _install_ip_adapter(self.unet, ip_adapter)
            self.inputs["ip_tokens"] = TensorSpec("float32", (BATCH, tokens, config.cross_attention_dim))
            self.inputs["ip_scale"] = _UNIT_SCALE
        self.outputs = {"noise_pred": TensorSpec("float32", (BATCH, config.out_channels, *latent))}

    @classmethod
    def load(cls, pipeline_dir: Path, *, controlnet: bool = False, ip_adapter: Path | None = None) -> UNet:
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(pipeline_dir, subfolder="unet", local_files_only=True)
        return cls(unet, controlnet=controlnet, ip_adapter=load_ip_adapter_weights(ip_adapter) if ip_adapter else None)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor]:
        named = dict(zip(self.inputs, tensors, strict=True))
        added = _added_conditioning(named)
        if "ip_tokens" in named:
            added["image_embeds"] = (named["ip_tokens"], named["ip_scale"])  # see _PassIPTokens
        residuals = {}
        if "mid_residual" in named:
            down = tuple(tensor for key, tensor in named.items() if key.startswith("down_residual_"))
            residuals = {
                "down_block_additional_residuals": down,
                "mid_block_additional_residual": named["mid_residual"],
            }
        noise_pred = self.unet(
            named["sample"],
            named["timestep"],
            named["encoder_hidden_states"],
            added_cond_kwargs=added or None,
            return_dict=False,
            **residuals,
        )[0]
        return (noise_pred,)


class ControlNet(Component):
    """`diffusion_controlnet`: the residuals for the UNet from the 4-channel noisy latent and a control image
    `controlnet_cond` [B, 3, H, W] in [0, 1], each batch item scaled by its `conditioning_scale`."""

    name = "diffusion_controlnet"

    def __init__(self, controlnet: nn.Module) -> None:
        super().__init__()
        self.controlnet = controlnet.eval()
        config = controlnet.config
        self.inputs = {
            "sample": TensorSpec("float32", (BATCH, config.in_channels, LATENT_H, LATENT_W)),
            "timestep": _TIMESTEP,
            "encoder_hidden_states": TensorSpec("float32", (BATCH, TEXT_LENGTH, config.cross_attention_dim)),
            "controlnet_cond": TensorSpec("float32", (BATCH, config.conditioning_channels, IMAGE_H, IMAGE_W), (0, 1)),
            "conditioning_scale": _UNIT_SCALE,
        }
        projection_dim = _sdxl_projection_dim(controlnet)
        if projection_dim is not None:
            self.inputs |= _sdxl_conditioning(projection_dim)
        self.outputs = residual_specs(controlnet)

    @classmethod
    def load(cls, controlnet_dir: Path) -> ControlNet:
        from diffusers import ControlNetModel

        return cls(ControlNetModel.from_pretrained(controlnet_dir, local_files_only=True))

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.inputs, tensors, strict=True))
        down, mid = self.controlnet(
            named["sample"],
            named["timestep"],
            encoder_hidden_states=named["encoder_hidden_states"],
            controlnet_cond=named["controlnet_cond"],
            # diffusers multiplies every residual by this: a [B, 1, 1, 1] tensor scales each item on its own
            conditioning_scale=named["conditioning_scale"].view(-1, 1, 1, 1),
            added_cond_kwargs=_added_conditioning(named) or None,
            return_dict=False,
        )
        return (*down, mid)


class VaeEncoder(Component):
    """`diffusion_vae_encoder`: image [B, 3, H, W] in [-1, 1] -> latent = latent_dist.mean x scaling_factor."""

    name = "diffusion_vae_encoder"

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae.eval()
        self.inputs = {"image": TensorSpec("float32", (BATCH, vae.config.in_channels, IMAGE_H, IMAGE_W))}
        self.outputs = {"latent": TensorSpec("float32", (BATCH, vae.config.latent_channels, LATENT_H, LATENT_W))}

    @classmethod
    def load(cls, pipeline_dir: Path) -> VaeEncoder:
        return cls(_load_vae(pipeline_dir))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.vae.encode(image).latent_dist.mean * self.vae.config.scaling_factor,)


class VaeDecoder(Component):
    """`diffusion_vae_decoder`: scaled latent [B, 4, h, w] (as the UNet sees it) -> image [B, 3, H, W], clamped to
    [-1, 1]."""

    name = "diffusion_vae_decoder"

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae.eval()
        latent = TensorSpec("float32", (BATCH, vae.config.latent_channels, LATENT_H, LATENT_W), (-3, 3))
        self.inputs = {"latent": latent}
        self.outputs = {"image": TensorSpec("float32", (BATCH, vae.config.out_channels, IMAGE_H, IMAGE_W))}

    @classmethod
    def load(cls, pipeline_dir: Path) -> VaeDecoder:
        return cls(_load_vae(pipeline_dir))

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor]:
        image = self.vae.decode(latent / self.vae.config.scaling_factor, return_dict=False)[0]
        return (image.clamp(-1.0, 1.0),)


class ImageEncoder(Component):
    """`diffusion_image_encoder`: CLIP-normalised pixel_values [B, 3, S, S] -> ip_tokens [B, T, D], the CLIP vision
    model's image_embeds through the IP-Adapter's image projection (plain IP-Adapter layout)."""

    name = "diffusion_image_encoder"

    def __init__(self, encoder: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.projection = projection.eval()
        size = encoder.config.image_size
        self.inputs = {"pixel_values": TensorSpec("float32", (BATCH, 3, size, size), (-2, 2))}
        tokens, width = projection.num_image_text_embeds, projection.norm.normalized_shape[0]
        self.outputs = {"ip_tokens": TensorSpec("float32", (BATCH, tokens, width))}

    @classmethod
    def load(cls, ip_adapter_dir: Path) -> ImageEncoder:
        from transformers import CLIPVisionModelWithProjection

        encoder = CLIPVisionModelWithProjection.from_pretrained(
            ip_adapter_dir, subfolder="image_encoder", local_files_only=True, attn_implementation="eager"
        )
        return cls(encoder, _image_projection(load_ip_adapter_weights(ip_adapter_dir)["image_proj"]))

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.projection(self.encoder(pixel_values).image_embeds),)


def iter_components(
    pipeline_dir: Path, *, controlnet_dir: Path | None = None, ip_adapter_dir: Path | None = None
) -> Iterator[Component]:
    """Every component of a build, loaded one at a time in contract order: text encoder(s), UNet, ControlNet,
    image encoder, VAE encoder, VAE decoder (a real SDXL is too large to hold all of it in memory at once)."""
    pipeline_dir = Path(pipeline_dir)
    yield TextEncoder.load(pipeline_dir)
    if family_of(pipeline_dir) == "sdxl":
        yield TextEncoder.load(pipeline_dir, second=True)
    yield UNet.load(pipeline_dir, controlnet=controlnet_dir is not None, ip_adapter=ip_adapter_dir)
    if controlnet_dir is not None:
        yield ControlNet.load(controlnet_dir)
    if ip_adapter_dir is not None:
        yield ImageEncoder.load(ip_adapter_dir)
    yield VaeEncoder.load(pipeline_dir)
    yield VaeDecoder.load(pipeline_dir)


def load_components(
    pipeline_dir: Path, *, controlnet_dir: Path | None = None, ip_adapter_dir: Path | None = None
) -> dict[str, Component]:
    """All components of `iter_components`, by model name."""
    components = iter_components(pipeline_dir, controlnet_dir=controlnet_dir, ip_adapter_dir=ip_adapter_dir)
    return {component.name: component for component in components}


def _load_vae(pipeline_dir: Path) -> nn.Module:
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(pipeline_dir, subfolder="vae", local_files_only=True)


def ip_adapter_weights_file(ip_adapter_dir: Path) -> Path:
    """ip-adapter.safetensors in the folder, else its only *.safetensors / *.bin file."""
    folder = Path(ip_adapter_dir)
    if (folder / IP_ADAPTER_WEIGHTS).is_file():
        return folder / IP_ADAPTER_WEIGHTS
    candidates = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    if len(candidates) != 1:
        raise ValueError(f"{folder} must hold one IP-Adapter weights file (*.safetensors or *.bin), found {candidates}")
    return candidates[0]


def load_ip_adapter_weights(ip_adapter_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The IP-Adapter state dict as diffusers' `load_ip_adapter` reads it: {"image_proj": ..., "ip_adapter": ...}."""
    path = ip_adapter_weights_file(ip_adapter_dir)
    if path.suffix != ".safetensors":
        return torch.load(path, map_location="cpu", weights_only=True)
    from safetensors.torch import load_file

    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, tensor in load_file(path).items():
        part, _, rest = key.partition(".")
        state[part][rest] = tensor
    return state


def _image_projection(image_proj: Mapping[str, torch.Tensor]) -> nn.Module:
    from diffusers.models.embeddings import ImageProjection

    if "proj.weight" not in image_proj or "norm.weight" not in image_proj:
        raise ValueError("only the plain IP-Adapter layout (image_proj.proj.*, image_proj.norm.*) is supported")
    width = image_proj["norm.weight"].shape[0]
    tokens, embed_dim = image_proj["proj.weight"].shape[0] // width, image_proj["proj.weight"].shape[1]
    projection = ImageProjection(image_embed_dim=embed_dim, cross_attention_dim=width, num_image_text_embeds=tokens)
    projection.load_state_dict({key.replace("proj.", "image_embeds."): value for key, value in image_proj.items()})
    return projection


def _install_ip_adapter(unet: nn.Module, state: Mapping[str, dict]) -> int:
    """Load the IP-Adapter into unet with diffusers' loader, then make its scale a per-item input: cross-attention
    processors become `BatchScaledIPAdapterProcessor` and the image projection (done by `ImageEncoder`) is
    bypassed. Returns the number of IP tokens."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    unet._load_ip_adapter_weights([dict(state)], low_cpu_mem_usage=False)
    processors = {
        name: BatchScaledIPAdapterProcessor(p.to_k_ip[0], p.to_v_ip[0])
        if isinstance(p, IPAdapterAttnProcessor2_0)
        else p
        for name, p in unet.attn_processors.items()
    }
    tokens = unet.encoder_hid_proj.image_projection_layers[0].num_image_text_embeds
    unet.set_attn_processor(processors)
    unet.encoder_hid_proj = _PassIPTokens()
    return tokens


class _PassIPTokens(nn.Module):
    """Stands in for the UNet's IP-Adapter projection: `added_cond_kwargs["image_embeds"]` is already
    (ip_tokens, ip_scale), which the UNet hands to every cross-attention processor beside the text states."""

    def forward(self, ip_inputs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return ip_inputs


class BatchScaledIPAdapterProcessor(nn.Module):
    """diffusers' IP-Adapter cross-attention (IPAdapterAttnProcessor2_0, one adapter, no masks) with the scale a
    [B] tensor: output = to_out(attention(text) + ip_scale[b] x attention(ip_tokens)). diffusers' own processor
    takes a Python float, which the ONNX graph would freeze."""

    def __init__(self, to_k_ip: nn.Linear, to_v_ip: nn.Linear) -> None:
        super().__init__()
        self.to_k_ip = to_k_ip
        self.to_v_ip = to_v_ip

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]],
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        plain = attn.spatial_norm is None and attn.group_norm is None and not attn.norm_cross
        if not plain or attention_mask is not None or hidden_states.ndim != 3:
            raise NotImplementedError("IP-Adapter export supports the SD / SDXL transformer cross-attention only")
        text_states, (ip_tokens, ip_scale) = encoder_hidden_states
        query = attn.to_q(hidden_states)
        text = _attend(attn, query, attn.to_k(text_states), attn.to_v(text_states))
        image = _attend(attn, query, self.to_k_ip(ip_tokens), self.to_v_ip(ip_tokens))
        out = attn.to_out[1](attn.to_out[0](text + ip_scale.view(-1, 1, 1).to(text.dtype) * image))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def _attend(attn: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    batch, head_dim = query.shape[0], key.shape[-1] // attn.heads
    q, k, v = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
