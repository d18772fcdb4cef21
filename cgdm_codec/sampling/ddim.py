"""Noise schedule and deterministic DDIM sampling, kept apart from the network.

The network predicts x0 directly (x0-parametrisation), so a step is: clamp the prediction
to the data range [-1, 1], recover the noise it implies, and re-noise to the previous,
lower noise level. With eta = 0 the update is deterministic, which the codec needs: the
decoder must reproduce exactly what the encoder simulated.
"""

from __future__ import annotations

import math

import torch

from ..diffusion_config import SamplerConfig

DATA_MIN, DATA_MAX = -1.0, 1.0


def linear_alphas_cumprod(num_steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """DDPM's linearly increasing betas, as cumulative products of (1 - beta), float64."""
    betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alphas_cumprod(num_steps: int, offset: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule (betas capped at 0.999), float64."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1.0 - betas, dim=0)


def trailing_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """Evenly spaced steps that start at the last training timestep (pure noise).

    t_k = floor((n - k) * T / n) - 1 for k = 0 .. n-1, e.g. T=1000, n=9 gives
    999, 887, 776, 665, 554, 443, 332, 221, 110. Starting at T-1 matters for few-step
    sampling: x_T really is noise there, so training and sampling agree.
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}")
    return [(num_steps - k) * num_train_timesteps // num_steps - 1 for k in range(num_steps)]


class DDIMScheduler:
    """Deterministic DDIM (eta = 0) for an x0-predicting network."""

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

    def step(self, model_output_x0: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        """x_{t_prev} from x_t and the predicted x0 (eta = 0)."""
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(self.previous(t))
        x0 = model_output_x0.float().clamp(DATA_MIN, DATA_MAX)
        eps = (sample.float() - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        return math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps

    def step_(self, x0: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        """:meth:`step` for the decoder, reusing ``x0``'s and ``sample``'s memory (both float32).

        The same float32 operations in the same order as :meth:`step` (so bit-identical
        results), but written into the two inputs instead of five image-sized temporaries:
        at 24 MP each temporary is ~290 MB. Not for autograd; both inputs are overwritten.
        """
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(self.previous(t))
        if x0.dtype != torch.float32 or sample.dtype != torch.float32:
            raise TypeError("step_ works on float32 tensors")
        x0.clamp_(DATA_MIN, DATA_MAX)
        eps = sample.sub_(math.sqrt(a_t) * x0).div_(math.sqrt(1.0 - a_t))
        # a + b == b + a exactly in IEEE arithmetic, so the sum may land in eps's memory.
        return eps.mul_(math.sqrt(1.0 - a_prev)).add_(x0.mul_(math.sqrt(a_prev)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The forward process q(x_t | x0) for a batch of per-sample timesteps t (B,)."""
        a = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *[1] * (x0.dim() - 1))
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise
