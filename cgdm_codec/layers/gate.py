"""The simple gate: half of the channels times the other half.

Gated restoration networks (NAFNet) use it in place of an activation function: a product
of two linear maps is already nonlinear, it costs one multiply per output, and it halves
the channels, so the layer before it is simply made twice as wide.
"""

from __future__ import annotations

import torch
from torch import nn


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b
