"""Base codec 1: the learned variable-rate mean-scale hyperprior (``models.base_codec``).

Two streams, ``z`` then ``y``. The diffusion stage is conditioned on the level index. The
entropy parameters run on the CPU in float64 whatever the device (bit-exact decoding).

Numpy, torch and the model are imported by the methods that code: the registry imports this
module for its record, and ``cgdm info`` must not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..errors import FormatError, WeightsError
from ..weights import base_weights_path, verified_manifest
from .interface import BaseEncoding, BaseRecord, rgb_to_tensor, tensor_to_rgb

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from ..models.base_codec import VariableRateHyperprior

#: Base codec 1 in the registry: levels 1..6 only, conditioned on the level index.
RECORD = BaseRecord(
    codec_id=1, name="hyperprior", streams=("z", "y"), implementation=f"{__name__}:HyperpriorBase",
    network=True, condition="level", diffusion_weights=("cgdm-small",),
)


def pad_to(x: "torch.Tensor", multiple: int) -> "torch.Tensor":
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class HyperpriorBase:
    record: ClassVar[BaseRecord] = RECORD

    def __init__(self, model: "VariableRateHyperprior", sha256: str) -> None:
        self.model, self.sha256 = model, sha256

    @classmethod
    def create(cls) -> "HyperpriorBase":
        from ..models.base_codec import VariableRateHyperprior

        path = base_weights_path()
        if not path.is_file():
            raise WeightsError(f"base-codec weights not found at {path}")
        sha = verified_manifest(path)["sha256"]
        return cls(VariableRateHyperprior.from_weights(path), sha)

    def identity(self) -> str:
        """What this backend contributes to a file's weights id (docs/format.md, 9.1)."""
        return self.sha256

    def fine_level(self, fine: int) -> int:
        return RECORD.level_for(fine)  # raises: levels 1..6 only

    def encode(self, rgb: "np.ndarray", level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False, device: "torch.device | None" = None,
               threads: int | None = None) -> BaseEncoding:  # torch's threads are set process-wide
        import torch

        from ..device import autocast_for

        if fine is not None:
            raise ValueError("the hyperprior base has levels 1..6 only (no fine quality)")
        dev = device or torch.device("cpu")
        model = self.model.place(dev)
        with torch.no_grad(), autocast_for(dev):
            x = pad_to(rgb_to_tensor(rgb), model.MULTIPLE).to(dev).contiguous(memory_format=torch.channels_last)
            s = model.compress(x, level - 1)
        return BaseEncoding((s.z, s.y), self.condition((s.z, s.y), level), level)

    def condition(self, streams: tuple[bytes, ...], level: int) -> int:
        """The level index (level - 1): what the hyperprior's diffusion network is conditioned on."""
        return level - 1

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                    device: "torch.device | None" = None) -> "torch.Tensor":
        import torch

        from ..device import autocast_for
        from ..models.base_codec import BaseStreams

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
                   device: "torch.device | None" = None) -> "np.ndarray":
        return tensor_to_rgb(self.reconstruct(streams, width, height, level, device))

    def decode_image(self, streams: tuple[bytes, ...], width: int, height: int) -> "Image.Image":
        """Not offered: x~ needs the network, and with it the header's level (``decode_rgb``)."""
        raise NotImplementedError("the hyperprior base decodes with torch: use decode_rgb")
