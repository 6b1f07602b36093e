"""Pixels to the loop's conditioning tensors: working-size image, inpainting mask, subject edges, reference.

Arrays in: uint8 RGB (H, W, 3) and alpha (H, W). Tensors out: float32 NCHW torch tensors in diffusers' ranges
(image [-1, 1], mask {0, 1} with 1 = repaint, edges [0, 1]), made by diffusers' own image processors so that the
loop feeds the UNet exactly what diffusers' inpaint pipelines would.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor
from transformers import CLIPImageProcessorPil

MATTE_DILATE_PX = 6
"""How far the repainted region reaches into the subject's soft edge (and the edge map beyond its outline)."""
SUBJECT_THRESHOLD = 128
CANNY_THRESHOLDS = (100, 200)


@dataclass(frozen=True)
class Conditioning:
    image: torch.Tensor
    """(1, 3, h, w) source at working size, [-1, 1]."""
    mask: torch.Tensor
    """(1, 1, h, w) 1 where the scene is painted: the background and a few pixels into the subject's edge."""
    masked_image: torch.Tensor
    """(1, 3, h, w) the source with the repainted region zeroed (0 = mid grey in [-1, 1])."""
    edges: torch.Tensor
    """(1, 3, h, w) Canny edges of the subject in [0, 1], a canny ControlNet's conditioning image."""
    planes: torch.Tensor
    """(1, 3, h, w) a two-plane depth map in [0, 1] from the matte (subject near = 1, scene far = 0, the outline
    softened), a depth ControlNet's conditioning image: replate has no depth estimator, and the scene is new anyway;
    what the ControlNet should keep is that something stands in front where the subject is."""

    def control_image(self, kind: str) -> torch.Tensor:
        return self.planes if kind == "depth" else self.edges


def prepare_conditioning(
    image: np.ndarray, alpha: np.ndarray, width: int, height: int, vae_scale_factor: int
) -> Conditioning:
    rgb = resize(image, width, height)
    subject = resize(alpha, width, height) >= SUBJECT_THRESHOLD
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MATTE_DILATE_PX + 1,) * 2)
    repaint = cv2.dilate((~subject).astype(np.uint8), kernel).astype(np.float32)
    near_subject = cv2.dilate(subject.astype(np.uint8), kernel).astype(bool)
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), *CANNY_THRESHOLDS) * near_subject
    image_t, mask_t = preprocess_inpaint_inputs(
        rgb[np.newaxis].astype(np.float32) / 255, repaint[np.newaxis, ..., np.newaxis], vae_scale_factor
    )
    edges_rgb = np.repeat(edges[np.newaxis, ..., np.newaxis], 3, axis=-1).astype(np.float32) / 255
    processor = VaeImageProcessor(vae_scale_factor=vae_scale_factor, do_normalize=False)
    planes = cv2.GaussianBlur(subject.astype(np.float32), (0, 0), max(1.0, MATTE_DILATE_PX / 2))
    planes_rgb = np.repeat(planes[np.newaxis, ..., np.newaxis], 3, axis=-1)
    return Conditioning(
        image=image_t,
        mask=mask_t,
        masked_image=image_t * (mask_t < 0.5),
        edges=processor.preprocess(edges_rgb),
        planes=processor.preprocess(planes_rgb),
    )


def preprocess_inpaint_inputs(
    image: np.ndarray, mask: np.ndarray, vae_scale_factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """image float32 (1, h, w, 3) in [0, 1], mask float32 (1, h, w, 1) in [0, 1] -> the tensors diffusers'
    StableDiffusionInpaintPipeline makes of the same arrays (image [-1, 1], mask binarised)."""
    image_processor = VaeImageProcessor(vae_scale_factor=vae_scale_factor)
    mask_processor = VaeImageProcessor(
        vae_scale_factor=vae_scale_factor, do_normalize=False, do_binarize=True, do_convert_grayscale=True
    )
    return image_processor.preprocess(image), mask_processor.preprocess(mask)


def reference_pixels(reference: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (h, w, 3) RGB -> float32 (1, 3, S, S) CLIP-normalised, as the IP-Adapter's image encoder expects."""
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return np.asarray(processor(images=reference, return_tensors="np").pixel_values, dtype=np.float32)


def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (H, W[, C]) -> (height, width[, C]): area averaging to shrink, bicubic to enlarge."""
    if pixels.shape[:2] == (height, width):
        return pixels
    shrinking = width * height < pixels.shape[0] * pixels.shape[1]
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
