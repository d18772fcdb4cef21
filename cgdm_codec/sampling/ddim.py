"""Noise schedule and deterministic DDIM sampling, kept apart from the network.

The network predicts x0 directly (x0-parametrisation), so a step is: clamp the prediction
to the data range [-1, 1], recover the noise it implies, and re-noise to the previous,
lower noise level. With eta = 0 the update is deterministic, which the codec needs: the
decoder must reproduce exactly what the encoder simulated.

The schedule is numpy and a step is plain arithmetic, so the same scheduler steps torch
tensors (training, the torch decoder) and numpy arrays (the ONNX Runtime decoder, which
must not import torch), with the same float32 operations in the same order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..diffusion_config import SamplerConfig
from .arrays import clip_

if TYPE_CHECKING:
    import torch

DATA_MIN, DATA_MAX = -1.0, 1.0


def linear_alphas_cumprod(num_steps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """DDPM's linearly increasing betas, as cumulative products of (1 - beta), float64."""
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def cosine_alphas_cumprod(num_steps: int, offset: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule (betas capped at 0.999), float64."""
    t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    return np.cumprod(1.0 - betas)


def trailing_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """Evenly spaced steps that start at the last training timestep (pure noise).

    t_k = floor((n - k) * T / n) - 1 for k = 0 .. n-1, e.g. T=1000, n=9 gives
    999, 887, 776, 665, 554, 443, 332, 221, 110. Starting at T-1 matters for few-step
    sampling: x_T really is noise there, so training and sampling agree.
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}")
    return [(num_steps - k) * num_train_timesteps // num_steps - 1 for k in range(num_steps)]


def _float32(x: Any) -> Any:
    """A float32 view or copy of a torch tensor or numpy array."""
    return x.astype(np.float32, copy=False) if isinstance(x, np.ndarray) else x.float()


class DDIMScheduler:
    """Deterministic DDIM (eta = 0) for an x0-predicting network, on tensors or arrays."""

    def __init__(self, num_train_timesteps: int = 1000, schedule: str = "linear",
                 beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        if schedule == "linear":
            self.alphas_cumprod = linear_alphas_cumprod(num_train_timesteps, beta_start, beta_end)
        elif schedule == "cosine":
            self.alphas_cumprod = cosine_alphas_cumprod(num_train_timesteps)
        else:
            raise ValueError(f"unknown schedule {schedule!r}")
        self.num_train_timesteps = num_train_timesteps
        self.timesteps: list[int] = []

    @classmethod
    def from_config(cls, cfg: SamplerConfig) -> "DDIMScheduler":
        return cls(cfg.train_timesteps, cfg.schedule, cfg.beta_start, cfg.beta_end)

    def set_timesteps(self, num_steps: int) -> None:
        self.timesteps = trailing_timesteps(self.num_train_timesteps, num_steps)

    def alpha_bar(self, t: int) -> float:
        """Signal fraction at timestep t; t = -1 (after the last step) is clean data."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def previous(self, t: int) -> int:
        i = self.timesteps.index(t)
        return self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1

    def step(self, model_output_x0: Any, t: int, sample: Any) -> Any:
        """x_{t_prev} from x_t and the predicted x0 (eta = 0); differentiable for tensors."""
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(self.previous(t))
        x0 = _float32(model_output_x0).clip(DATA_MIN, DATA_MAX)
        eps = (_float32(sample) - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        return math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps

    def is_last(self, t: int) -> bool:
        return self.previous(t) < 0

    def step_(self, x0: Any, t: int, sample: Any) -> Any:
        """:meth:`step` for the decoder, reusing ``x0``'s and ``sample``'s memory (both float32).

        The same float32 operations in the same order as :meth:`step` (so bit-identical
        results), but written into the two inputs instead of five image-sized temporaries:
        at 24 MP each temporary is ~290 MB. Not for autograd; both inputs are overwritten.
        The last step (to clean data) returns the clipped ``x0`` without reading ``sample``
        (``1 * x0 + 0 * eps`` is ``x0``, the same up to the sign of a zero), so a one-step
        decode needs no canvas of x_T (``sample.sample``).
        """
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(self.previous(t))
        if a_prev == 1.0:  # the last step: 1 * x0 + 0 * eps is x0, so ``sample`` is not read
            return clip_(x0, DATA_MIN, DATA_MAX) if isinstance(x0, np.ndarray) else x0.clamp_(DATA_MIN, DATA_MAX)
        if isinstance(x0, np.ndarray):
            if x0.dtype != np.float32 or sample.dtype != np.float32:
                raise TypeError("step_ works on float32 arrays")
            clip_(x0, DATA_MIN, DATA_MAX)
            np.subtract(sample, math.sqrt(a_t) * x0, out=sample)
            np.divide(sample, math.sqrt(1.0 - a_t), out=sample)
            np.multiply(sample, math.sqrt(1.0 - a_prev), out=sample)
            return np.add(sample, np.multiply(x0, math.sqrt(a_prev), out=x0), out=sample)
        if str(x0.dtype) != "torch.float32" or str(sample.dtype) != "torch.float32":
            raise TypeError("step_ works on float32 tensors")
        x0.clamp_(DATA_MIN, DATA_MAX)
        eps = sample.sub_(math.sqrt(a_t) * x0).div_(math.sqrt(1.0 - a_t))
        # a + b == b + a exactly in IEEE arithmetic, so the sum may land in eps's memory.
        return eps.mul_(math.sqrt(1.0 - a_prev)).add_(x0.mul_(math.sqrt(a_prev)))

    def add_noise(self, x0: "torch.Tensor", noise: "torch.Tensor", t: "torch.Tensor") -> "torch.Tensor":
        """The forward process q(x_t | x0) for a batch of per-sample timesteps t (B,) (training)."""
        import torch

        a = torch.as_tensor(self.alphas_cumprod, device=x0.device)[t].to(x0.dtype).view(-1, *[1] * (x0.dim() - 1))
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise
