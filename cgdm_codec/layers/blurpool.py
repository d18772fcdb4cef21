"""Downsampling that cannot alias: a fixed binomial blur, then every second pixel.

A strided convolution (or a pixel-unshuffle) keeps whatever lies above the coarse grid's
Nyquist frequency and folds it back as false low-frequency detail, and a network whose
stride-2 sampling phase matters answers differently to the same picture shifted by one
pixel. The blur (taps 1, 2, 1 in each direction, response 0 at the Nyquist frequency)
removes the content that would fold before the samples are taken ("blur pool").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLUR_TAPS = (1.0, 2.0, 1.0)


class BlurDownsample(nn.Module):
    """Depthwise separable blur, edges replicated, then stride 2; no parameters."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor(BLUR_TAPS) / sum(BLUR_TAPS)
        self.channels = channels
        self.register_buffer("row", taps.view(1, 1, 1, 3).repeat(channels, 1, 1, 1), persistent=False)
        self.register_buffer("col", taps.view(1, 1, 3, 1).repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        x = F.conv2d(x, self.row.to(x.dtype), stride=(1, 2), groups=self.channels)
        return F.conv2d(x, self.col.to(x.dtype), stride=(2, 1), groups=self.channels)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x (half-pixel centres): its interpolation filter (1, 3, 3, 1) / 4 is 0 at
    the fine grid's Nyquist frequency, so a coarse feature never becomes a one-pixel grid."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
