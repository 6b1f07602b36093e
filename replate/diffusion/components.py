"""The seam between the loop and wherever the contract's models run (docs/diffusion.md, "Component contract")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np


class Components(Protocol):
    """Runs one contract model (`diffusion_unet`, `diffusion_vae_decoder`, ...) on a batch: float32 / int64 numpy
    tensors by input name in, the requested outputs by name out. Async, so that in Triton each call is a BLS
    request that concurrent requests' loops share through dynamic batching."""

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]: ...
