"""Syntax-driven Feature Fusion (SFF): u = W_e * e + W_d * d with kernels made from a condition.

The paper maps (syntax, timestep) through an FC net to two dynamic convolution kernels.
Generating full C x C x 3 x 3 kernels would need an FC layer with millions of outputs per
level, so each dynamic kernel here is factorised into
    a per-sample depthwise 3x3 kernel  (spatial filtering, C * 9 numbers),
    a per-sample per-channel gain       (how much of each channel to pass, C numbers),
    a static pointwise convolution      (channel mixing, learned, shared by all samples).
The dynamic parts are a learned static kernel plus an FC-generated offset whose layer starts
at zero, so an untrained SFF is an ordinary learned fusion and training starts stably.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dynamic_depthwise(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Depthwise convolution with a different (C, k, k) kernel for every sample.

    The batch is folded into the channel axis so one grouped convolution (groups = B * C)
    applies all kernels at once. One kernel (a condition shared by all tiles of one image,
    passed as a single row) is a plain depthwise convolution of the whole batch: the same
    work, faster, and a graph without a data-dependent branch (ONNX export).
    """
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    if kernels.shape[0] == 1:
        return F.conv2d(x, kernels[0].unsqueeze(1).to(x.dtype), padding=k // 2, groups=c)
    y = F.conv2d(x.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, k, k).to(x.dtype),
                 padding=k // 2, groups=b * c)
    return y.view(b, c, h, w)


class DynamicDepthwise(nn.Module):
    """One branch's dynamic kernel: static depthwise kernel + per-sample offset and gain."""

    def __init__(self, channels: int, cond_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        k = kernel_size
        base = torch.zeros(channels, k, k)
        base[:, k // 2, k // 2] = 1.0  # identity: the static path starts as a plain 1x1 fusion
        self.base = nn.Parameter(base)
        self.to_params = nn.Linear(cond_dim, channels * (k * k + 1))
        nn.init.zeros_(self.to_params.weight)
        nn.init.zeros_(self.to_params.bias)
        self.channels, self.kernel_size = channels, k

    def kernels(self, cond: torch.Tensor) -> torch.Tensor:
        """(rows, C, k, k): one depthwise kernel per channel and condition row."""
        c, k = self.channels, self.kernel_size
        params = self.to_params(F.silu(cond)).float()
        offsets, gains = params[:, : c * k * k], params[:, c * k * k:]
        kernels = self.base + offsets.view(-1, c, k, k)
        return kernels * (1.0 + gains).view(-1, c, 1, 1)  # the gain folds into the kernel

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return dynamic_depthwise(x, self.kernels(cond))


class SyntaxFeatureFusion(nn.Module):
    """Fuse consistency features e and diffusion features d under a condition vector."""

    def __init__(self, channels: int, cond_dim: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.w_e = DynamicDepthwise(channels, cond_dim)
        self.w_d = DynamicDepthwise(channels, cond_dim)
        self.mix = nn.Conv2d(2 * channels, out_channels or channels, 1)

    def forward(self, e: torch.Tensor, d: torch.Tensor, cond: torch.Tensor, constant: bool = False) -> torch.Tensor:
        """``constant``: d is the same everywhere on the canvas, given as (rows, C, 1, 1); its
        depthwise filter then scales it by the kernel's sum, and its half of the mixing adds
        one vector per row, so no d-sized map is ever made."""
        if not constant:
            return self.mix(torch.cat([self.w_e(e, cond), self.w_d(d, cond)], dim=1))
        c = e.shape[1]
        weight = self.mix.weight
        u = F.conv2d(self.w_e(e, cond), weight[:, :c], self.mix.bias)
        filtered = d.flatten(1).float() * self.w_d.kernels(cond).sum(dim=(-2, -1))
        return u + (filtered @ weight[:, c:, 0, 0].t())[:, :, None, None].to(u.dtype)
