"""Per-quality channel gains: the mechanism that makes one model variable-rate."""

from __future__ import annotations

import torch
from torch import nn


class GainUnit(nn.Module):
    """Scales every channel by a learned, strictly positive gain chosen by the quality level.

    A larger gain before rounding means a finer effective quantisation step, hence more bits.
    Gains are stored as logarithms so they stay positive under plain gradient descent.
    """

    def __init__(self, num_levels: int, channels: int, log_range: float = 0.9) -> None:
        super().__init__()
        init = torch.linspace(-log_range, log_range, num_levels)[:, None].repeat(1, channels)
        self.log_gain = nn.Parameter(init)

    def gains(self, q_index: torch.Tensor) -> torch.Tensor:
        """Gains shaped (B, C, 1, 1) for zero-based quality indices of shape (B,)."""
        return self.log_gain[q_index].exp()[:, :, None, None]

    def forward(self, x: torch.Tensor, q_index: torch.Tensor) -> torch.Tensor:
        return x * self.gains(q_index).to(x.dtype)

    def inverse(self, x: torch.Tensor, q_index: torch.Tensor) -> torch.Tensor:
        return x / self.gains(q_index).to(x.dtype)

