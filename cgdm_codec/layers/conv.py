"""Strided 'same'-padded convolutions, the analysis/synthesis building blocks.

A k x k kernel with stride s and padding k // 2 maps H to ceil(H / s); the transposed
version with output padding s - 1 maps H back to s * H, so encoder and decoder shapes agree
for inputs padded to a multiple of the total stride.
"""

from __future__ import annotations

from torch import nn


def conv(cin: int, cout: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(cin: int, cout: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2,
                              output_padding=stride - 1)
