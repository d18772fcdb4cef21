"""The seam between the codec pipeline and a base codec.

A base codec turns an 8-bit RGB image into one or more byte streams (the container's base
sections) and back into x~, the degraded image the diffusion stage restores. It also says
what the diffusion stage is conditioned on: a value a decoder can read from the streams
(and the header's quality level), so encoder and decoder always agree on it.

A backend is one module with one class that carries its ``BaseRecord`` (``record``), and
one line in ``registry.BACKENDS``; nothing else names it (``docs/base-codec.md``). The
module must import without numpy or torch: ``cgdm info`` reads the registry.

Four numbers are called "quality" somewhere; these are their names in the code:

- ``level``: the container's quality level 1..6 (header field, ``-q``), every backend;
- ``fine``: a backend's own fine quality scale, ``BaseRecord.fine_range`` (AV1: Pillow's
  AVIF quality 0..100, ``--av1-quality``); None for a backend with levels only;
- ``qindex``: the AV1 quantiser ``base_q_idx`` 0..255 that libaom chose, read from the
  payload: what the AV1 diffusion networks are conditioned on;
- ``condition``: the integer the diffusion stage is conditioned on, whatever it means for
  the backend (``BaseRecord.condition``: ``"level"`` = level - 1, ``"qindex"`` = qindex).
  Inside the networks (``Steering.quality``, the U-Net, the exported ONNX graphs' input
  named ``quality``) it keeps its old name: the graphs already shipped fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

#: The container's quality levels (3 bits in the header, docs/format.md 3.2).
LEVELS = range(1, 7)


@dataclass(frozen=True)
class BaseRecord:
    """What the rest of the codec knows about a backend without importing its coder.

    Standard library only, so the registry (and through it the container's stream table and
    the CLI's choices) stays importable without numpy or torch.
    """

    codec_id: int  # the container's base codec id, 0..255 (docs/format.md, 3.2)
    name: str  # what --base calls it
    streams: tuple[str, ...]  # the base sections, in file order
    implementation: str  # "module:Class", imported when a file needs it
    network: bool  # whether coding with it needs torch (a learned model); if not, a
    # base-only decode runs on Pillow alone (``BaseCodec.decode_image``)
    #: what the diffusion stage is conditioned on, as ``UNetConfig.condition`` names it:
    #: "level" (the level index, level - 1) or "qindex" (the AV1 quantiser, 0..255)
    condition: str = "level"
    #: the backend's fine quality scale (``encode(fine=...)``), or None: levels 1..6 only
    fine_range: tuple[int, int] | None = None
    #: the fine quality each level 1..6 stands for (with ``fine_range``)
    level_fine: tuple[int, ...] | None = None
    # the CGDM weights trained on this base's decodes, oldest first: every generation stays
    # installed so that its files keep decoding; the encoder writes for the newest installed
    diffusion_weights: tuple[str, ...] = ()
    # networks with a realism input that decode the files of a generation at a realism above 0
    # (their manifest's ``realism_for`` names the generations): a decode-time dial, no re-encode
    realism_weights: tuple[str, ...] = ()
    # narrower networks distilled from a generation (their manifest's ``fast_for`` names it):
    # ``--fast`` decodes that generation's files with one, not bit for bit, at realism 0
    fast_weights: tuple[str, ...] = ()
    #: whether its decode is the input exactly: chosen by ``--lossless`` (never by ``--base``),
    #: its files have no diffusion stage and record level 6
    lossless: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.codec_id <= 255 or not self.streams:
            raise ValueError(f"base codec {self.name}: an id 0..255 and at least one stream")
        if (self.fine_range is None) != (self.level_fine is None):
            raise ValueError(f"base codec {self.name}: fine_range and level_fine go together")
        if self.level_fine is not None and len(self.level_fine) != len(LEVELS):
            raise ValueError(f"base codec {self.name}: one fine quality per level")

    def level_for(self, fine: int) -> int:
        """The level (1..6) whose fine quality is nearest, for the container's quality field."""
        if self.level_fine is None:
            raise ValueError(f"the {self.name} base has levels 1..6 only (no fine quality)")
        table = self.level_fine
        return 1 + min(range(len(table)), key=lambda i: (abs(table[i] - fine), i))


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


class WeightlessBase:
    """What every base codec without a network shares: it is made without loading anything,
    and adds nothing to a file's weights id."""

    @classmethod
    def create(cls) -> "WeightlessBase":
        return cls()

    def identity(self) -> str:
        return ""


class BaseCodec(Protocol):
    """What the pipeline, the size targeting and the evaluation call on a backend object."""

    record: ClassVar[BaseRecord]  # name, id, streams, scales, weights: see BaseRecord

    @classmethod
    def create(cls) -> "BaseCodec":
        """A ready backend: its weights loaded and checked (the pipeline caches it)."""

    def identity(self) -> str:
        """What the backend adds to a file's weights id (a weights sha256), "" for none."""

    def fine_level(self, fine: int) -> int:
        """The level 1..6 the header records for an encode at fine quality ``fine``."""

    def encode(self, rgb: np.ndarray, level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False, device: "torch.device | None" = None,
               threads: int | None = None) -> BaseEncoding:
        """Compress (H, W, 3) uint8 at level 1..6, or at the backend's fine quality, on at
        most ``threads`` cores (None: the granted cores)."""

    def condition(self, streams: tuple[bytes, ...], level: int) -> int:
        """The integer the diffusion stage is conditioned on, as a decoder derives it."""

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                    device: "torch.device | None" = None) -> "torch.Tensor":
        """x~ as a float32 (1, 3, H, W) tensor in [0, 1] on the CPU, exactly as decoded."""

    def decode_rgb(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                   device: "torch.device | None" = None) -> np.ndarray:
        """x~ as the (H, W, 3) uint8 image a base-only decode writes."""

    def decode_image(self, streams: tuple[bytes, ...], width: int, height: int) -> "Image.Image":
        """x~ as a Pillow image (RGB, or L for a grayscale coding) without numpy or torch.

        Called for base-only decodes of backends without a network (``record.network``
        False), so that such a decode imports neither; backends with a network may raise.
        """
