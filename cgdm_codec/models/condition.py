"""The condition vector both restoration networks are steered by: the timestep, the base
codec's condition (a level, or the AV1 quantiser), the syntax vector and, for a realism
network, the realism setting, through one small MLP.

The U-Net and the one-pass network share it as a base class, so that its layers keep the
names the shipped weights use (``quality_embed`` / ``qindex_embed``, ``cond_mlp``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..diffusion_config import UNetConfig

QINDEX_SCALE = 4  # qindex 0..255 spans about the range of the 1000 diffusion timesteps
REALISM_SCALE = 1000.0  # realism 0..1 embedded like timesteps 0..1000


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim), as in the Transformer."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class Conditioned(nn.Module):
    """A network with the condition vector's layers (built by ``add_condition``) and a
    configuration ``cfg`` that names the multiple its input sides must be."""

    cfg: Any

    @property
    def multiple(self) -> int:
        return self.cfg.multiple

    def add_condition(self, cfg: UNetConfig, syntax_length: int) -> None:
        self.condition_cfg = cfg
        dim = cfg.cond_dim
        if cfg.condition == "level":
            self.quality_embed = nn.Embedding(cfg.num_qualities, dim)
        elif cfg.condition == "qindex":
            self.qindex_embed = nn.Linear(cfg.inner, dim)
        else:
            raise ValueError(f"unknown condition kind {cfg.condition!r}")
        realism = cfg.inner if cfg.realism else 0
        self.cond_mlp = nn.Sequential(
            nn.Linear(cfg.inner + dim + syntax_length + realism, dim), nn.SiLU(), nn.Linear(dim, dim))

    def condition(self, t: torch.Tensor, syntax: torch.Tensor, quality: torch.Tensor,
                  realism: torch.Tensor | None = None) -> torch.Tensor:
        """The condition vector from timesteps (B,), syntax values (B, S) and base conditions (B,).

        A base condition is the level index (hyperprior) or the AV1 quantiser 0..255. A
        network with ``cfg.realism`` also takes the realism setting (B,) in [0, 1] (default 0).
        """
        cfg = self.condition_cfg
        if cfg.condition == "level":
            base = self.quality_embed(quality)
        else:  # quantiser steps spread like timesteps so neighbouring qindex values embed alike
            base = self.qindex_embed(timestep_embedding(quality * QINDEX_SCALE, cfg.inner))
        parts = [timestep_embedding(t, cfg.inner), base, syntax.float()]
        if cfg.realism:
            r = torch.zeros_like(t, dtype=torch.float32) if realism is None else realism.float()
            parts.append(timestep_embedding(r * REALISM_SCALE, cfg.inner))
        return self.cond_mlp(torch.cat(parts, dim=1))
