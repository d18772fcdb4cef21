"""Hostile AV1 payloads behind valid framing: the contract the fuzzer and the tests share.

Mutating whole ``.cgdm`` files mostly tests the CRC: nearly every edit is refused by the
container before the AV1 parser (``base/av1_bitstream.py``), the AVIF wrapper rebuild
(``base/avif_file.py``) or libavif/dav1d see it. Here only the AV1 stream (the single base
section of an AV1-base file) is mutated; the container is rebuilt around it with
``container.serialize`` (so its CRC is right) and decoded ``--base-only`` (no torch).

A fuzz input is one options byte followed by the AV1 payload (the OBUs as the container
stores them). The options byte picks the colour mode the header declares (bits 0-1: RGB, L,
RGBA, LA, so a 4:0:0 payload meets an RGB header and the other way round). The header's
width and height follow the payload's own sequence header when it parses (so mutated sizes
reach libavif), capped at ``MAX_PIXELS`` and the format's 32768 px a side; otherwise a fixed 64 x 48.

The contract (``check``): the decode either gives an image of the header's size and mode,
or raises ``FormatError``/``ImageError`` with a non-empty one-line message that the CLI maps
to exit code 1. Standard library plus the codec; no atheris, so pytest can import it.
"""

from __future__ import annotations

import io
import random
import zlib
from dataclasses import dataclass

import cgdm_codec
from cgdm_codec import generations, pipeline
from cgdm_codec.base.av1 import Av1Base, inspect_payload
from cgdm_codec.base.av1_bitstream import Av1Error
from cgdm_codec.base.avif_file import build_avif, sequence_header, split_avif
from cgdm_codec.container import MAX_DIM, CgdmFile, ColourMode, FormatError, parse, serialize
from cgdm_codec.errors import ImageError
from cgdm_codec.options import DecodeSettings

#: Header sizes beyond this fall back to the default: a hostile size the container allows
#: (up to 2^26 pixels) is bounded by --max-pixels, not by this harness, and would only make
#: each execution slow.
MAX_PIXELS = 1 << 18
FALLBACK_SIZE = (64, 48)
MODES = (ColourMode.RGB, ColourMode.L, ColourMode.RGBA, ColourMode.LA)
#: What escapes a decode of a damaged file: the codec's own one-line errors.
CLEAN_ERRORS = (FormatError, ImageError)


@dataclass(frozen=True)
class Outcome:
    """What one input did: decoded (``size``/``mode``) or refused (``error``)."""

    error: str | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None


def header_size(payload: bytes) -> tuple[int, int]:
    """The size the header declares: the payload's own (within MAX_PIXELS), else the fallback."""
    try:
        seq = sequence_header(payload)
    except Av1Error:
        return FALLBACK_SIZE
    w, h = seq.max_frame_width, seq.max_frame_height
    return (w, h) if w * h <= MAX_PIXELS and max(w, h) <= MAX_DIM else FALLBACK_SIZE


def wrap(options: int, payload: bytes) -> bytes:
    """A valid .cgdm file (right CRC, right alpha size) around ``payload``."""
    mode = MODES[options & 3]
    w, h = header_size(payload)
    alpha = zlib.compress(bytes((0x80,)) * (w * h), 1) if mode.has_alpha else None
    f = CgdmFile(quality=3, width=w, height=h, weights_id=generations.NO_WEIGHTS_ID, base_streams=(payload,),
                 colour_mode=mode, base_codec=Av1Base.record.codec_id, seed=0, alpha=alpha)
    return serialize(f)


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg, f"{type(e).__name__} message is not one line: {msg!r}"
    return msg


def check(data: bytes) -> Outcome:
    """Decode one fuzz input behind valid framing; an AssertionError or any other exception is a finding."""
    if not data:
        return Outcome(error="empty input")
    options, payload = data[0], bytes(data[1:])
    # The quantiser reader the diffusion stage uses must fail just as cleanly.
    try:
        inspect_payload(payload)
    except Av1Error as e:
        one_line(e)
    blob = wrap(options, payload)
    f = parse(blob)  # the framing is valid by construction: a FormatError here is a finding
    assert f.base_streams == (payload,)
    try:
        im = pipeline.decode_image(f, DecodeSettings(base_only=True))
    except CLEAN_ERRORS as e:
        return Outcome(error=one_line(e))
    assert im.size == (f.width, f.height), (im.size, f.width, f.height)
    assert im.mode == f.colour_mode.name, (im.mode, f.colour_mode)
    # A payload that decodes also survives the wrapper round trip the encoder relies on.
    assert split_avif(build_avif(payload, f.width, f.height)) == payload
    return Outcome(size=im.size, mode=im.mode)


def seed_payloads() -> list[bytes]:
    """Real AV1 payloads of several sizes, qualities and chroma formats: the encoder's 4:2:0 and
    4:0:0, and (written by Pillow directly) 4:4:4 (AV1 profile 1) and limited-range 4:2:2
    (profile 2), which take other branches of the sequence-header parser and of dav1d."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for (h, w), quality, gray, effort in (((48, 64), 2, False, "fast"), ((9, 17), 5, True, "fast"),
                                          ((1, 1), 1, False, "fast"), ((20, 33), 6, False, "default"),
                                          ((16, 16), 3, True, "default")):
        base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3)) * 0.6
        rgb = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(rgb[..., 0], "L") if gray else Image.fromarray(rgb, "RGB")
        data = cgdm_codec.encode(im, quality, base="av1", base_only=True, device="cpu", effort=effort)
        out.append(parse(data).base_streams[0])
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for subsampling, colour_range in (("4:4:4", "full"), ("4:2:2", "limited")):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "AVIF", quality=50, speed=8, subsampling=subsampling,
                                  range=colour_range, max_threads=1)
        out.append(split_avif(buf.getvalue()))
    return out


def seed_inputs() -> list[bytes]:
    """Fuzz inputs: each seed payload under each colour mode."""
    return [bytes((m,)) + p for p in seed_payloads() for m in range(len(MODES))]


# ------------------------------------------------------------------------ seeded mutations

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x12, 0x0A, 0x32)


def mutate(payload: bytes, rng: random.Random) -> bytes:
    """One structured random edit, biased towards the headers at the start of the stream."""
    b = bytearray(payload)
    n = len(b)
    head = min(n, 24)  # the sequence header and the frame header live here
    kind = rng.randrange(9)
    if n == 0 or kind == 8:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if kind == 0:  # flip 1-3 bits in the headers
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(head)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # flip a bit anywhere
        i = rng.randrange(n)
        b[i] ^= 1 << rng.randrange(8)
    elif kind == 2:  # an interesting byte value
        b[rng.randrange(head if rng.random() < 0.7 else n)] = rng.choice(INTERESTING)
    elif kind == 3:  # truncate
        del b[rng.randrange(n):]
    elif kind == 4:  # delete a range
        i = rng.randrange(n)
        del b[i:i + rng.randrange(1, 8)]
    elif kind == 5:  # insert random bytes
        i = rng.randrange(n + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    elif kind == 6:  # repeat a slice (an OBU twice, a longer tile group)
        i = rng.randrange(n)
        j = min(n, i + rng.randrange(1, 32))
        b[j:j] = b[i:j]
    else:  # random bytes over the tail (tile data) behind intact headers
        i = rng.randrange(head, n) if n > head else rng.randrange(n)
        b[i:] = bytes(rng.randrange(256) for _ in range(n - i))
    return bytes(b)


def mutations(payloads: list[bytes], count: int, seed: int = 0) -> list[bytes]:
    """``count`` deterministic fuzz inputs: options byte + a payload with 1-3 edits."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        p = rng.choice(payloads)
        for _ in range(rng.randrange(1, 4)):
            if rng.random() < 0.5:
                p = mutate_obu(p, lambda body: mutate(body, rng), rng)
            else:
                p = mutate(p, rng)
        out.append(bytes((rng.randrange(len(MODES)),)) + p)
    return out


# ------------------------------------------------------------------------ OBU-aware edits


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def split_loose(payload: bytes) -> list[tuple[int, bytes]] | None:
    """(header byte, body) of each OBU, or None where the framing is already broken."""
    from cgdm_codec.base.av1_bitstream import split_obus

    try:
        return [(o.header[0], o.payload) for o in split_obus(payload) if len(o.header) == 1]
    except Av1Error:
        return None


def join(obus: list[tuple[int, bytes]]) -> bytes:
    """OBUs with their size fields recomputed (the has_size bit forced on)."""
    return b"".join(bytes((h | 0x02,)) + leb128(len(body)) + body for h, body in obus)


def mutate_obu(payload: bytes, edit, rng: random.Random) -> bytes:
    """``edit`` applied to the body of one OBU, the sizes repaired: reaches the header parsers and
    dav1d instead of stopping at "OBU runs past the end". Falls back to editing the raw bytes."""
    obus = split_loose(payload)
    if not obus:
        return edit(payload)
    i = rng.randrange(len(obus))
    h, body = obus[i]
    choice = rng.randrange(6)
    if choice == 0 and len(obus) > 1:  # drop an OBU
        del obus[i]
    elif choice == 1:  # duplicate an OBU
        obus.insert(i, (h, body))
    elif choice == 2:  # change an OBU's type, keep its body
        obus[i] = ((h & ~0x78) | (rng.randrange(16) << 3), body)
    else:
        obus[i] = (h, edit(body))
    return join(obus)
