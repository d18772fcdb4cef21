"""The fixed-step DDIM run on whole patches, differentiable through its last steps.

Fine training and the encoder's online syntax optimisation both constrain the *sampled*
image, so they must run the sampler inside the loss. Backpropagating through all steps
multiplies activation memory by the step count; letting the gradient through only the
last ``grad_steps`` bounds it (RDEIC and CGDM's fine stage do the same kind of thing).
"""

from __future__ import annotations

import torch

from ..models.unet import ConsistencyGuidedUNet
from .ddim import DDIMScheduler


def unrolled_sample(unet: ConsistencyGuidedUNet, scheduler: DDIMScheduler, x_T: torch.Tensor,
                    x_tilde: torch.Tensor, syntax: torch.Tensor, quality: torch.Tensor,
                    steps: int, grad_steps: int = 1, realism: torch.Tensor | None = None) -> torch.Tensor:
    """x0 sampled from x_T in ``steps`` DDIM steps (images in [-1, 1], float32 result).

    The consistency features are computed once, with gradient, and shared by all steps.
    """
    scheduler.set_timesteps(steps)
    feats = unet.consistency(x_tilde)
    sample = x_T.float()
    grad = torch.is_grad_enabled()
    for i, t in enumerate(scheduler.timesteps):
        with torch.set_grad_enabled(grad and i >= steps - grad_steps):
            tt = torch.full((x_T.shape[0],), t, dtype=torch.long, device=x_T.device)
            x0 = unet.denoise(sample, x_tilde, feats, unet.condition(tt, syntax, quality, realism))
            sample = scheduler.step(x0, t, sample)
    return sample
