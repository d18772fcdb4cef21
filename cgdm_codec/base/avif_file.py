"""The AVIF wrapper around an AV1 still picture: split it off at encode, rebuild it at decode.

Pillow's AVIF writer (libavif 1.x) puts ≈ 275 bytes of ISOBMFF boxes around the AV1 data;
all of them follow from the image size, the AV1 sequence header and the payload length, so
the container stores only the OBUs (minus the 2-byte temporal delimiter) and the decoder
rebuilds the very file libavif wrote (``tests/test_avif_file.py`` checks byte equality).
The layout is specified in ``docs/format.md`` (9.5). Standard library only.
"""

from __future__ import annotations

import struct

from .av1_bitstream import OBU_SEQUENCE_HEADER, Av1Error, SequenceHeader, parse_sequence_header, split_obus

TEMPORAL_DELIMITER = b"\x12\x00"
FTYP_BRANDS = b"avif" + bytes(4) + b"avif" + b"mif1" + b"miaf"
# nclx defaults libavif writes for Pillow's RGB input: BT.709 primaries, sRGB transfer, BT.601 matrix
DEFAULT_NCLX = (1, 13, 6)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, body: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + body)


def _ftyp(seq: SequenceHeader) -> bytes:
    """libavif adds an AV1 profile brand: MA1B for Main-profile colour, MA1A for High, else none."""
    brands = FTYP_BRANDS
    if seq.seq_profile == 0 and not seq.mono_chrome:
        brands += b"MA1B"
    elif seq.seq_profile == 1:
        brands += b"MA1A"
    return _box(b"ftyp", brands)


def _av1c(seq: SequenceHeader) -> bytes:
    b1 = (seq.seq_profile << 5) | seq.seq_level_idx_0
    b2 = (seq.seq_tier_0 << 7 | seq.high_bitdepth << 6 | seq.twelve_bit << 5 | seq.mono_chrome << 4
          | seq.subsampling_x << 3 | seq.subsampling_y << 2 | seq.chroma_sample_position)
    return _box(b"av1C", bytes((0x81, b1, b2, 0)))


def _colr(seq: SequenceHeader) -> bytes:
    cp, tc, mc = ((seq.color_primaries, seq.transfer_characteristics, seq.matrix_coefficients)
                  if seq.color_description_present else DEFAULT_NCLX)
    return _box(b"colr", b"nclx" + struct.pack(">HHHB", cp, tc, mc, seq.color_range << 7))


def _meta(width: int, height: int, seq: SequenceHeader, offset: int, length: int) -> bytes:
    channels = 1 if seq.mono_chrome else 3
    hdlr = _full_box(b"hdlr", 0, 0, bytes(4) + b"pict" + bytes(12) + b"\x00")
    pitm = _full_box(b"pitm", 0, 0, struct.pack(">H", 1))
    iloc = _full_box(b"iloc", 0, 0, bytes((0x44, 0x00)) + struct.pack(">HHHHII", 1, 1, 0, 1, offset, length))
    infe = _full_box(b"infe", 2, 0, struct.pack(">HH", 1, 0) + b"av01" + b"Color\x00")
    iinf = _full_box(b"iinf", 0, 0, struct.pack(">H", 1) + infe)
    ispe = _full_box(b"ispe", 0, 0, struct.pack(">II", width, height))
    pixi = _full_box(b"pixi", 0, 0, bytes((channels,)) + bytes((seq.bit_depth,)) * channels)
    ipco = _box(b"ipco", ispe + pixi + _av1c(seq) + _colr(seq))
    ipma = _full_box(b"ipma", 0, 0, struct.pack(">IHB", 1, 1, 4) + bytes((0x01, 0x02, 0x83, 0x04)))
    return _full_box(b"meta", 0, 0, hdlr + pitm + iloc + iinf + _box(b"iprp", ipco + ipma))


def sequence_header(payload: bytes) -> SequenceHeader:
    obus = split_obus(payload)
    if not obus or obus[0].type != OBU_SEQUENCE_HEADER:
        raise Av1Error("the AV1 payload does not start with a sequence header")
    return parse_sequence_header(obus[0].payload)


def build_avif(payload: bytes, width: int, height: int) -> bytes:
    """The AVIF file libavif writes around ``payload`` for a width x height still picture."""
    seq = sequence_header(payload)
    if (seq.max_frame_width, seq.max_frame_height) != (width, height):
        raise Av1Error(f"the AV1 sequence header is {seq.max_frame_width}x{seq.max_frame_height}, "
                       f"the file says {width}x{height}")
    data = TEMPORAL_DELIMITER + payload
    ftyp = _ftyp(seq)
    meta_len = len(_meta(width, height, seq, 0, 0))
    offset = len(ftyp) + meta_len + 8
    return ftyp + _meta(width, height, seq, offset, len(data)) + _box(b"mdat", data)


def split_avif(avif: bytes) -> bytes:
    """The AV1 payload of a file ``build_avif`` can rebuild (checked: byte-identical)."""
    try:
        at = avif.rindex(b"mdat") + 4
    except ValueError:
        raise Av1Error("no mdat box in the AVIF file") from None
    data = avif[at:]
    if not data.startswith(TEMPORAL_DELIMITER):
        raise Av1Error("the AV1 item does not start with a temporal delimiter")
    payload = data[len(TEMPORAL_DELIMITER):]
    seq = sequence_header(payload)
    if build_avif(payload, seq.max_frame_width, seq.max_frame_height) != avif:
        raise Av1Error("the AVIF file has boxes this codec cannot rebuild (alpha, ICC, EXIF...)")
    return payload
