"""Base codec 2: AV1 intra, through Pillow's AVIF support (libavif + libaom / dav1d).

The container stores the AV1 payload only (the OBUs of the AVIF item, without the temporal
delimiter); ``avif_file`` rebuilds the AVIF wrapper libavif would have written, byte for
byte, so decoding is Pillow's own AVIF decoder on a file identical to the one the encoder
saw. That is what makes the encoder's simulated x~ exactly the decoder's x~.

Settings are pinned (4:2:0, full range, libavif's default BT.601 matrix, 8 bits) and were
chosen by measurement (``docs/base-codec.md``): 4:4:4 cost 25 % more encode time for
-0.4 % / -0.9 % / +0.6 % BD-rate on PSNR / MS-SSIM / HaarPSI. The encoder speed follows the
effort. The quality levels 1..6 map to Pillow qualities; any Pillow quality 0..100 can be
asked for directly (``fine``). The diffusion stage is conditioned on the frame's
``base_q_idx``, read from the payload, so it serves any quality.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, ClassVar

from .av1_bitstream import Av1Error
from .avif_file import build_avif, check_payload, sequence_header, split_avif
from .interface import BaseEncoding, BaseRecord, WeightlessBase, rgb_to_tensor

if TYPE_CHECKING:  # numpy loads for encoding only: a base-only decode runs on Pillow alone
    import numpy as np
    from PIL import Image

SUBSAMPLING = "4:2:0"
COLOUR_RANGE = "full"
#: libaom speed per encoder effort (BD-rate vs speed 6 on 8 half-size sunhays80 photos:
#: speed 8 +13 % PSNR at 2.7x less time, speed 4 -6.5 % at 6.5x more, speed 2 -9.4 % at 19x).
#: The default, speed 3, gives -2.9 / -1.5 / -1.4 % BD-rate against speed 4 (PSNR / MS-SSIM /
#: HaarPSI, base only) for 2.2x the AV1 time, which keeps a 768×512 encode within its 3 s aim
#: (docs/base-codec.md, docs/benchmarks.md; earlier defaults in CHANGELOG.md). ``max`` takes
#: speed 2: its per-image search already costs ~60 s, speed 2 adds ~1.5 s.
SPEED_FOR_EFFORT = {"fast": 8, "default": 3, "max": 2}
#: Pictures larger than this keep speed 4 at the default effort: speed 3 would double the AV1
#: time of a large photo (a 24 MP encode takes ≈ 29 s at speed 4 on two cores, half of it in
#: libaom; a 2048×2048 one 13.7 s at speed 3).
DEFAULT_EFFORT_MAX_PIXELS = 1 << 22
#: The default effort's speed above DEFAULT_EFFORT_MAX_PIXELS.
DEFAULT_EFFORT_LARGE_SPEED = 4


def speed_for(effort: str, pixels: int) -> int:
    """libaom's speed for an encode of ``pixels`` pixels at ``effort``."""
    if effort == "default" and pixels > DEFAULT_EFFORT_MAX_PIXELS:
        return DEFAULT_EFFORT_LARGE_SPEED
    return SPEED_FOR_EFFORT[effort]


#: Pillow AVIF quality for levels 1..6: ≈ 0.064, 0.11, 0.20, 0.35, 0.62, 1.00 bpp on full-size
#: sunhays80 photos (benchmarks/av1_levels.py, 12 images; docs/base-codec.md).
LEVEL_QUALITY = (5, 16, 28, 40, 52, 68)
FINE_QUALITY_RANGE = (0, 100)

#: Base codec 2 in the registry. Diffusion generations oldest first (docs/diffusion.md); the
#: realism networks decode at a realism above 0: cgdm-av1-3r the files of -3 and -4, cgdm-av1-5r those of -5 and -6;
#: cgdm-av1-6f, distilled from cgdm-av1-6, decodes that generation's files under --fast.
RECORD = BaseRecord(
    codec_id=2, name="av1", streams=("av1",), implementation=f"{__name__}:Av1Base", network=False,
    condition="qindex", fine_range=FINE_QUALITY_RANGE, level_fine=LEVEL_QUALITY,
    diffusion_weights=("cgdm-av1", "cgdm-av1-2", "cgdm-av1-3", "cgdm-av1-4", "cgdm-av1-5", "cgdm-av1-6"),
    realism_weights=("cgdm-av1-3r", "cgdm-av1-5r"),
    fast_weights=("cgdm-av1-6f",),
)


def quality_for(level: int, fine: int | None = None) -> int:
    """The Pillow AVIF quality of an encode at ``level`` 1..6, or at an explicit ``fine``."""
    if fine is not None:
        lo, hi = FINE_QUALITY_RANGE
        if not lo <= fine <= hi:
            raise ValueError(f"AV1 quality must be {lo}..{hi}")
        return int(fine)
    return LEVEL_QUALITY[level - 1]


def level_for(fine: int) -> int:
    """The level (1..6) whose Pillow quality is nearest ``fine``, for the container's quality field."""
    return RECORD.level_for(fine)


def encode_avif(rgb: "np.ndarray", quality: int, speed: int, grayscale: bool = False,
                threads: int | None = None) -> bytes:
    """An AVIF file of an (H, W, 3) uint8 image; grayscale images are coded as 4:0:0.

    libaom runs on ``threads`` cores (None: the granted cores, ``cores.granted_cores``). Its
    output depends a little on the count: 2 threads against 1 gave +0.23 % / +0.01 % BD-rate
    (PSNR / MS-SSIM) at speed 4 on 8 half-size sunhays80 photos in 0.61x the time
    (benchmarks/av1_threads.py, docs/benchmarks.md)."""
    import numpy as np
    from PIL import Image

    from ..cores import granted_cores

    im = Image.fromarray(np.ascontiguousarray(rgb[..., 0]), "L") if grayscale else Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    im.save(buf, "AVIF", quality=quality, speed=speed, range=COLOUR_RANGE,
            subsampling="4:0:0" if grayscale else SUBSAMPLING, max_threads=threads or granted_cores())
    return buf.getvalue()


def decode_avif(data: bytes) -> "Image.Image":
    """The decoded picture: mode RGB, or L for a 4:0:0 (grayscale) payload."""
    from PIL import AvifImagePlugin, Image  # noqa: F401  (registers AVIF without Image.init())

    with Image.open(io.BytesIO(data), formats=["AVIF"]) as im:  # init() would import every plugin
        im.load()
        return im if im.mode in ("RGB", "L") else im.convert("RGB")


def inspect_payload(payload: bytes, width: int | None = None, height: int | None = None) -> int:
    """Check a payload is one intra still picture (of the given size, else its own); its base_q_idx."""
    if width is None or height is None:
        seq = sequence_header(payload)
        width, height = seq.max_frame_width, seq.max_frame_height
    return check_payload(payload, width, height)[1].base_q_idx


class Av1Base(WeightlessBase):
    """AV1 intra behind the base-codec interface; needs no weights."""

    record: ClassVar[BaseRecord] = RECORD

    def fine_level(self, fine: int) -> int:
        return level_for(fine)

    def encode_rgb(self, rgb: "np.ndarray", fine: int, speed: int, grayscale: bool = False,
                   threads: int | None = None) -> tuple[bytes]:
        """The streams of an encode at Pillow quality ``fine`` and libaom ``speed``."""
        return (split_avif(encode_avif(rgb, fine, speed, grayscale, threads)),)

    def encode(self, rgb: "np.ndarray", level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False, device=None, threads: int | None = None) -> BaseEncoding:
        speed = speed_for(effort, rgb.shape[0] * rgb.shape[1])
        streams = self.encode_rgb(rgb, quality_for(level, fine), speed, grayscale, threads)
        return BaseEncoding(streams, self.condition(streams), level if fine is None else level_for(fine))

    def condition(self, streams: tuple[bytes, ...], level: int | None = None) -> int:
        """The diffusion stage's condition: the qindex, the AV1 frame's base_q_idx (0..255)."""
        return inspect_payload(streams[0])

    def decode_image(self, streams: tuple[bytes, ...], width: int, height: int) -> "Image.Image":
        """x~ as a Pillow image (RGB, or L when coded as 4:0:0), without numpy or torch.

        ``build_avif`` checks the payload against the header's size first.
        """
        avif = build_avif(streams[0], width, height)
        try:
            im = decode_avif(avif)
        except (OSError, ValueError, SyntaxError, RuntimeError) as e:  # libavif/dav1d refusals
            raise Av1Error(f"the AV1 payload does not decode ({e})") from None
        if im.size != (width, height):
            raise Av1Error("the AV1 decode has the wrong size")
        return im

    def decode_rgb(self, streams: tuple[bytes, ...], width: int, height: int, level: int | None = None,
                   device=None) -> "np.ndarray":
        """x~ as (H, W, 3) uint8."""
        import numpy as np

        return np.asarray(self.decode_image(streams, width, height).convert("RGB"))

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int,
                    device=None):
        """x~ as a float (1, 3, H, W) tensor in [0, 1] on the CPU."""
        return rgb_to_tensor(self.decode_rgb(streams, width, height))
