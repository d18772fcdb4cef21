"""Base codec 3: lossless, the VP8L bitstream of a lossless WebP file (``cgdm encode --lossless``).

Why WebP lossless and not AV1 lossless: Pillow 13's AVIF writer fixes the matrix
coefficients to BT.601 (no identity matrix), so ``quality=100`` 4:4:4 AVIF is off by up to 3
levels on RGB photos; only grayscale (4:0:0) round-trips. Coding three 4:0:0 AV1 planes after
a reversible colour transform is exact but measured larger than WebP lossless and 3x slower
(``docs/lossless.md``, ``benchmarks/lossless.py``).

As with the AV1 base, the container stores the payload only: the VP8L chunk's data. The
20-byte RIFF wrapper libwebp writes around it follows from the payload's length, and
:func:`build_webp` writes it back (``docs/format.md``, 9.7). The encoder checks that the
rebuilt file is byte for byte the one libwebp wrote, and that it decodes to exactly the
input, before a file is written.

Standard library at import: the registry reads :data:`RECORD` without numpy or Pillow.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, ClassVar

from ..errors import ImageError
from .interface import BaseEncoding, BaseRecord, WeightlessBase, rgb_to_tensor

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

#: Base codec 3 in the registry: no fine quality, no network, no diffusion stage.
RECORD = BaseRecord(
    codec_id=3, name="webp-lossless", streams=("vp8l",), implementation=f"{__name__}:WebpLosslessBase",
    network=False, lossless=True,
)
#: The container's quality field of a lossless file (the best level; decoders ignore it).
LEVEL = 6
#: WebP's limit: 14 bits per side in the VP8L header.
MAX_SIDE = 16383
#: libwebp's (method, quality) per encoder effort, cwebp's settings: ``fast`` its lossless
#: defaults (-m 4 -q 75), ``default`` -m 6 (Pillow's quality 80), ``max`` -z 9 (-m 6 -q 100).
#: On 4 half-size sunhays80 photos: fast +1.3 % bytes in 0.3x the time, max -0.07 % in 7x.
SETTINGS_FOR_EFFORT = {"fast": (4, 75), "default": (6, 80), "max": (6, 100)}

VP8L_SIGNATURE = 0x2F
_RIFF_HEADER = 20  # "RIFF" size "WEBP" "VP8L" size
MAX_PAYLOAD = 0xFFFFFFFF - _RIFF_HEADER


class LosslessError(ValueError):
    """A VP8L payload or WebP file this base does not accept (the pipeline reports it as a
    corrupted base stream)."""


def check_payload(payload: bytes, width: int, height: int) -> None:
    """Refuse anything but a VP8L bitstream header for an opaque width x height picture."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise LosslessError("the VP8L payload must be bytes")
    if len(payload) < 5 or payload[0] != VP8L_SIGNATURE:
        raise LosslessError("the payload is not a VP8L bitstream (signature 0x2f)")
    if len(payload) > MAX_PAYLOAD:
        raise LosslessError("the VP8L payload is too large for a 32-bit RIFF file")
    bits = int.from_bytes(bytes(payload[1:5]), "little")
    size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if bits >> 29:
        raise LosslessError(f"unknown VP8L version {bits >> 29}")
    if (bits >> 28) & 1:
        raise LosslessError("the VP8L payload has alpha (alpha has its own section)")
    if size != (width, height):
        raise LosslessError(f"the VP8L payload is {size[0]}x{size[1]}, not {width}x{height}")


def build_webp(payload: bytes, width: int, height: int) -> bytes:
    """The lossless WebP file libwebp writes around this VP8L payload (simple format)."""
    check_payload(payload, width, height)
    payload = bytes(payload)
    pad = b"\0" * (len(payload) & 1)  # RIFF chunks are padded to an even length
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload + pad
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def split_webp(data: bytes, width: int, height: int) -> bytes:
    """The VP8L payload of a simple-format lossless WebP file, refused unless
    :func:`build_webp` gives the very same file back."""
    if len(data) < _RIFF_HEADER or data[:4] != b"RIFF" or data[8:16] != b"WEBPVP8L":
        raise LosslessError("not a simple-format lossless WebP file (VP8X or VP8 chunk?)")
    length = struct.unpack_from("<I", data, 16)[0]
    payload = data[_RIFF_HEADER:_RIFF_HEADER + length]
    if build_webp(payload, width, height) != data:
        raise LosslessError("the WebP file is not laid out as build_webp rebuilds it")
    return payload


def encode_webp(rgb: "np.ndarray", effort: str = "default") -> bytes:
    """A lossless WebP file of an (H, W, 3) uint8 image."""
    from PIL import Image

    method, quality = SETTINGS_FOR_EFFORT[effort]
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "WEBP", lossless=True, method=method, quality=quality, exact=True)
    return buf.getvalue()


def decode_webp(data: bytes) -> "Image.Image":
    """The RGB picture of a lossless WebP file (Pillow's WebP plugin, no other plugin loaded)."""
    from PIL import Image, WebPImagePlugin  # noqa: F401  (registers WebP without Image.init())

    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as im:
            im.load()
            return im if im.mode == "RGB" else im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:  # libwebp refusals
        raise LosslessError(f"the VP8L payload does not decode ({e})") from None


def check_side(width: int, height: int) -> None:
    """WebP lossless codes up to 16383 pixels per side; cgdm's other bases go to 32768."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageError(f"lossless coding handles up to {MAX_SIDE} pixels per side (WebP lossless); "
                         f"this image is {width}x{height}")


class WebpLosslessBase(WeightlessBase):
    """Lossless WebP behind the base-codec interface; needs no weights, has no diffusion stage."""

    record: ClassVar[BaseRecord] = RECORD

    def fine_level(self, fine: int) -> int:
        """No fine scale: every lossless file records the best level."""
        return LEVEL

    def encode(self, rgb: "np.ndarray", level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False, device=None, threads: int | None = None) -> BaseEncoding:
        """The VP8L payload of ``rgb``, checked to decode to exactly ``rgb``; ``level`` is ignored."""
        import numpy as np

        height, width = rgb.shape[:2]
        check_side(width, height)
        payload = split_webp(encode_webp(np.ascontiguousarray(rgb, dtype=np.uint8), effort), width, height)
        if not np.array_equal(self.decode_rgb((payload,), width, height), rgb):
            raise RuntimeError("the lossless WebP encode does not decode to the input (a libwebp change?)")
        return BaseEncoding((payload,), 0, LEVEL)

    def condition(self, streams: tuple[bytes, ...], level: int | None = None) -> int:
        """No diffusion stage is conditioned on a lossless file: 0."""
        return 0

    def decode_image(self, streams: tuple[bytes, ...], width: int, height: int) -> "Image.Image":
        """The exact picture as a Pillow RGB image, without numpy or torch."""
        im = decode_webp(build_webp(streams[0], width, height))
        if im.size != (width, height):
            raise LosslessError("the VP8L decode has the wrong size")
        return im

    def decode_rgb(self, streams: tuple[bytes, ...], width: int, height: int, level: int | None = None,
                   device=None) -> "np.ndarray":
        """The exact picture as (H, W, 3) uint8."""
        import numpy as np

        return np.asarray(self.decode_image(streams, width, height))

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int, device=None):
        """The exact picture as a float (1, 3, H, W) tensor in [0, 1] (the protocol's x~)."""
        return rgb_to_tensor(self.decode_rgb(streams, width, height))
