"""Base codec 1: the learned variable-rate mean-scale hyperprior (``models.base_codec``).

Two streams, ``z`` then ``y``. The diffusion stage is conditioned on the level index. The
entropy parameters run on the CPU in float64 whatever the device (bit-exact decoding).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..container import FormatError
from ..device import autocast_for
from ..errors import WeightsError
from ..models.base_codec import BaseStreams, VariableRateHyperprior
from ..weights import base_weights_path, verified_manifest
from .interface import BaseEncoding, rgb_to_tensor, tensor_to_rgb


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class HyperpriorBase:
    codec_id: ClassVar[int] = 1
    name: ClassVar[str] = "hyperprior"
    stream_names: ClassVar[tuple[str, ...]] = ("z", "y")
    fine_range: ClassVar[tuple[int, int] | None] = None  # levels 1..6 only

    def __init__(self, model: VariableRateHyperprior, sha256: str) -> None:
        self.model, self.sha256 = model, sha256

    @classmethod
    def create(cls) -> "HyperpriorBase":
        path = base_weights_path()
        if not path.is_file():
            raise WeightsError(f"base-codec weights not found at {path}")
        sha = verified_manifest(path)["sha256"]
        return cls(VariableRateHyperprior.from_weights(path), sha)

    def identity(self) -> str:
        """What this backend contributes to a file's weights id (docs/format.md, 9.1)."""
        return self.sha256

    def encode(self, rgb: np.ndarray, level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False, device: torch.device | None = None) -> BaseEncoding:
        if fine is not None:
            raise ValueError("the hyperprior base has levels 1..6 only (no fine quality)")
        dev = device or torch.device("cpu")
        model = self.model.place(dev)
        with torch.no_grad(), autocast_for(dev):
            x = pad_to(rgb_to_tensor(rgb), model.MULTIPLE).to(dev).contiguous(memory_format=torch.channels_last)
            s = model.compress(x, level - 1)
        return BaseEncoding((s.z, s.y), level - 1, level)

    def condition(self, streams: tuple[bytes, ...], level: int) -> int:
        return level - 1

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                    device: torch.device | None = None) -> torch.Tensor:
        dev = device or torch.device("cpu")
        m = self.model.MULTIPLE
        s = BaseStreams(z=streams[0], y=streams[1], latent_shape=(-(-height // m), -(-width // m)))
        try:
            y_hat = self.model.decompress_latent(s, level - 1)
        except (RuntimeError, ValueError, IndexError) as e:
            raise FormatError(f"base-codec stream is corrupted ({e})") from None
        self.model.place(dev)
        with torch.no_grad(), autocast_for(dev):
            x_tilde = self.model.synthesis(y_hat.to(dev).contiguous(memory_format=torch.channels_last))
        return x_tilde[..., :height, :width].float().cpu()

    def decode_rgb(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                   device: torch.device | None = None) -> np.ndarray:
        return tensor_to_rgb(self.reconstruct(streams, width, height, level, device))
