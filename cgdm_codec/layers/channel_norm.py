"""Layer normalisation over the channels of each pixel, with a learned gain and bias.

Unlike group normalisation, whose statistics are pooled over the whole tile, it looks at
one pixel at a time: a network built from it (and from nothing else that pools over
space) gives the same output for a pixel whatever the size of the tile around it, so
tiles of any size and the crops it was trained on agree.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(dim=1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias
