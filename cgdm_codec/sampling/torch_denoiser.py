"""The consistency-guided U-Net behind the sampler's ``Denoiser`` seam, in torch.

Used by training, the encoder's per-image fine-tuning, CUDA decodes and CPUs where
bfloat16 is fast (AMX). ``precision`` None leaves autocast to the caller (training wraps
its whole step); otherwise the decoder's rule applies (``device.autocast_for``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..device import autocast_for
from ..models.unet import ConsistencyGuidedUNet
from .sample import Steering

CHANNELS_LAST = torch.channels_last


class TorchDenoiser:
    def __init__(self, unet: ConsistencyGuidedUNet, device: torch.device | str | None = None,
                 precision: str | None = "auto") -> None:
        """``device``: move the U-Net there (channels-last, eval mode) once; None keeps it as is."""
        if device is not None:
            unet = unet.to(torch.device(device), memory_format=CHANNELS_LAST).eval()
        self.unet, self.precision = unet, precision
        self.device = next(unet.parameters()).device
        self.multiple = unet.multiple

    def _autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if self.precision is None else autocast_for(self.device, self.precision)

    def condition(self, t: int, steering: Steering) -> torch.Tensor:
        syntax = torch.as_tensor(steering.syntax, device=self.device).float()
        syntax = syntax.view(1, -1) if syntax.dim() == 1 else syntax
        rows = syntax.shape[0]
        quality = torch.as_tensor(steering.quality, device=self.device).long().view(-1).expand(rows)
        tt = torch.full((rows,), t, dtype=torch.long, device=self.device)
        realism = None
        if steering.realism is not None:
            realism = torch.as_tensor(steering.realism, device=self.device).float().view(-1).expand(rows)
        return self.unet.condition(tt, syntax, quality, realism)

    def features(self, x_tilde: torch.Tensor) -> list[torch.Tensor]:
        with self._autocast():
            return self.unet.consistency(x_tilde.contiguous(memory_format=CHANNELS_LAST))

    def denoise(self, x_t: torch.Tensor, x_tilde: torch.Tensor, features: list[torch.Tensor],
                cond: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.unet.denoise(x_t.contiguous(memory_format=CHANNELS_LAST),
                                     x_tilde.contiguous(memory_format=CHANNELS_LAST), features, cond)

    def grad(self, enabled: bool) -> contextlib.AbstractContextManager:
        return torch.set_grad_enabled(enabled)

    def grad_enabled(self) -> bool:
        return torch.is_grad_enabled()
