"""The seam between the codec pipeline and a base codec.

A base codec turns an 8-bit RGB image into one or more byte streams (the container's base
sections) and back into x~, the degraded image the diffusion stage restores. It also says
what the diffusion stage is conditioned on: a value a decoder can read from the streams
(and the header's quality level), so encoder and decoder always agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class BaseEncoding:
    streams: tuple[bytes, ...]
    condition: int  # what the diffusion stage is conditioned on (see BaseCodec.condition)
    level: int  # the quality level 1..6 written into the container's header


def rgb_to_tensor(rgb: np.ndarray) -> "torch.Tensor":
    """(H, W, 3) uint8 -> the float32 (1, 3, H, W) tensor in [0, 1] that x and x~ travel as."""
    import numpy as np
    import torch

    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def rgb_to_uint8_tensor(rgb: np.ndarray) -> "torch.Tensor":
    """(H, W, 3) uint8 -> a (1, 3, H, W) uint8 tensor, over the same memory where it is writable."""
    import numpy as np
    import torch

    # a read-only array (Pillow's) is copied: torch warns about, and may write to, shared memory
    return torch.from_numpy(np.require(rgb, np.uint8, ["C", "W"])).permute(2, 0, 1)[None]


def tensor_to_rgb(x: "torch.Tensor") -> "np.ndarray":
    """A float (1, 3, H, W) tensor in [0, 1] -> (H, W, 3) uint8, rounding to nearest."""
    import torch

    # clamp makes the one copy; the rest works in place (same values, less peak memory).
    return x[0].clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


class BaseCodec(Protocol):
    codec_id: ClassVar[int]  # the container's base codec id (docs/format.md, 3.2)
    name: ClassVar[str]  # what --base calls it
    stream_names: ClassVar[tuple[str, ...]]
    #: The backend's fine quality scale (``encode(fine=...)``), or None when it has levels only.
    fine_range: ClassVar[tuple[int, int] | None]

    def encode(self, rgb: np.ndarray, level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False) -> BaseEncoding:
        """Compress (H, W, 3) uint8 at level 1..6, or at a backend-specific fine quality."""

    def condition(self, streams: tuple[bytes, ...], level: int) -> int:
        """The integer the diffusion stage is conditioned on, as a decoder derives it."""

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                    device: "torch.device | None" = None) -> "torch.Tensor":
        """x~ as a float32 (1, 3, H, W) tensor in [0, 1] on the CPU, exactly as decoded."""

    def decode_rgb(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                   device: "torch.device | None" = None) -> np.ndarray:
        """x~ as the (H, W, 3) uint8 image a base-only decode writes.

        Separate from ``reconstruct`` so that a backend without a network (AV1) can serve a
        base-only decode without importing torch.
        """
