"""The fixed-step sampler run on whole training patches, differentiable through its last steps.

Fine training constrains the *sampled* image, so it runs the sampler inside the loss.
Backpropagating through all steps multiplies activation memory by the step count; letting
the gradient through only the last ``grad_steps`` bounds it (RDEIC and CGDM's fine stage
do the same kind of thing). It is the decoder's own loop (``sample.sample``) with every
patch one tile of its own.
"""

from __future__ import annotations

import torch

from ..models.unet import ConsistencyGuidedUNet
from .ddim import DDIMScheduler
from .sample import Steering, sample
from .tiling import make_grid
from .torch_denoiser import TorchDenoiser


def unrolled_sample(unet: ConsistencyGuidedUNet, scheduler: DDIMScheduler, x_T: torch.Tensor,
                    x_tilde: torch.Tensor, syntax: torch.Tensor, quality: torch.Tensor,
                    steps: int, grad_steps: int = 1, realism: torch.Tensor | None = None) -> torch.Tensor:
    """x0 sampled from x_T in ``steps`` steps (images in [-1, 1], float32 result).

    ``syntax`` (B or 1, S), ``quality`` and ``realism`` (B or 1,) per patch. The consistency
    features are computed once, with gradient, and shared by all steps.
    """
    scheduler.set_timesteps(steps)
    h, w = x_T.shape[-2:]
    m = unet.multiple
    grid = make_grid(h, w, -(-max(h, w) // m) * m, 0, m)
    return sample(TorchDenoiser(unet, precision=None), scheduler, x_T.float(), x_tilde, grid,
                  Steering(syntax, quality, realism), max_batch=x_T.shape[0], grad_steps=grad_steps)
