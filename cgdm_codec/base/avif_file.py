"""The AVIF file around an AV1 still picture: strip it at encode time, rebuild it at decode time.

Pillow (through libavif) writes a single-image AVIF as an ISOBMFF file of about 275 bytes of
boxes around the AV1 OBUs. Every field of those boxes follows from what the ``.cgdm`` decoder
already knows -- the image size, the AV1 sequence header at the start of the payload and the
payload's length -- so the container stores only the OBUs (minus the two-byte temporal
delimiter) and :func:`build_avif` writes the boxes back, byte for byte as libavif 1.4 does.
The layout is specified in ``docs/format.md``, section 9.6.

:func:`split_avif` locates the primary item's data through ``iloc`` and, before returning it,
checks that :func:`build_avif` gives back the very same file, so an encoder never stores a
payload whose AVIF it could not rebuild (another libavif version, an ICC profile, an EXIF
orientation, an alpha plane...).

Standard library only: checking a file never imports torch or Pillow.
"""

from __future__ import annotations

import struct

from .av1_bitstream import (
    OBU_FRAME,
    OBU_FRAME_HEADER,
    OBU_SEQUENCE_HEADER,
    OBU_TILE_GROUP,
    Av1Error,
    FrameInfo,
    SequenceHeader,
    parse_frame_header,
    parse_sequence_header,
    split_obus,
)

__all__ = ["split_avif", "build_avif", "wrapper_size", "sequence_header", "TEMPORAL_DELIMITER", "ITEM_NAME"]

# OBU header 0x12 (type 2 = temporal delimiter, has_size_field = 1), obu_size 0.
TEMPORAL_DELIMITER = b"\x12\x00"
ITEM_NAME = b"Color\x00"  # libavif's infe item_name for the colour item, with its terminator
ITEM_ID = 1
MAX_FILE_SIZE = 0xFFFFFFFF  # 32-bit box sizes and iloc fields
# CICP values "unspecified": what an AV1 sequence header without a colour description means.
CICP_UNSPECIFIED = 2

_FTYP_BASE = (b"avif", b"mif1", b"miaf")  # compatible brands libavif always writes, in order


# ---------------------------------------------------------------------------------------------
# Writing


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, body: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + body)


def _profile_brand(seq: SequenceHeader) -> bytes:
    """libavif 1.4 adds MA1B for 8/10-bit 4:2:0 and MA1A for 8/10-bit 4:4:4 (any level), else nothing."""
    if seq.bit_depth not in (8, 10) or seq.mono_chrome:
        return b""
    if seq.subsampling_x and seq.subsampling_y:
        return b"MA1B"
    if not seq.subsampling_x and not seq.subsampling_y:
        return b"MA1A"
    return b""  # 4:2:2


def _av1c(seq: SequenceHeader) -> bytes:
    """The 4-byte AV1CodecConfigurationRecord, without configOBUs (as libavif writes it)."""
    return bytes((
        0x81,  # marker 1, version 1
        (seq.seq_profile << 5) | seq.seq_level_idx_0,
        (seq.seq_tier_0 << 7) | (seq.high_bitdepth << 6) | (seq.twelve_bit << 5)
        | (seq.mono_chrome << 4) | (seq.subsampling_x << 3) | (seq.subsampling_y << 2)
        | seq.chroma_sample_position,
        0x00,  # reserved 3 bits, initial_presentation_delay_present 0, reserved 4 bits
    ))


def _colour(seq: SequenceHeader) -> tuple[int, int, int, int]:
    if seq.color_description_present:
        cp, tc, mc = seq.color_primaries, seq.transfer_characteristics, seq.matrix_coefficients
    else:
        cp = tc = mc = CICP_UNSPECIFIED
    return cp, tc, mc, seq.color_range


def check_payload(payload: bytes, width: int, height: int) -> tuple[SequenceHeader, FrameInfo]:
    """The sequence and frame headers of a payload that is one AV1 still picture of width x height."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise Av1Error("the AV1 payload must be bytes")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_FILE_SIZE:
            raise Av1Error(f"invalid image {name} {value!r}")
    obus = split_obus(bytes(payload))
    if not obus or obus[0].type != OBU_SEQUENCE_HEADER:
        raise Av1Error("the AV1 payload does not start with a sequence header OBU")
    if any(len(o.header) != 1 for o in obus):
        raise Av1Error("the AV1 payload has OBU extension headers (a layered stream)")
    kinds = [o.type for o in obus[1:]]
    if kinds == [OBU_FRAME]:
        frame = obus[1]
    elif len(kinds) >= 2 and kinds[0] == OBU_FRAME_HEADER and set(kinds[1:]) == {OBU_TILE_GROUP}:
        frame = obus[1]
    else:
        raise Av1Error("the sequence header is not followed by exactly one frame "
                       f"(OBU types {[o.type for o in obus]})")
    seq = parse_sequence_header(obus[0].payload)
    if not seq.still_picture:
        raise Av1Error("the AV1 payload is not a still picture")
    if (seq.max_frame_width, seq.max_frame_height) != (width, height):
        raise Av1Error(f"the sequence header is for {seq.max_frame_width}x{seq.max_frame_height}, "
                       f"not {width}x{height}")
    info = parse_frame_header(frame.payload, seq)
    if (info.width, info.height) != (width, height):
        raise Av1Error(f"the AV1 frame is {info.width}x{info.height}, not {width}x{height}")
    return seq, info


def sequence_header(payload: bytes) -> SequenceHeader:
    """The parsed sequence header OBU a payload starts with."""
    obus = split_obus(bytes(payload))
    if not obus or obus[0].type != OBU_SEQUENCE_HEADER:
        raise Av1Error("the AV1 payload does not start with a sequence header OBU")
    return parse_sequence_header(obus[0].payload)


def wrapper_size(payload: bytes, width: int, height: int) -> int:
    """len(build_avif(payload, width, height)) - len(payload): 277 (4:2:0, 4:4:4), 271 (4:0:0)."""
    seq, _ = check_payload(payload, width, height)
    return 271 + len(_profile_brand(seq)) + (0 if seq.mono_chrome else 2)


def build_avif(payload: bytes, width: int, height: int) -> bytes:
    """The AVIF file libavif 1.4 writes around these AV1 OBUs (the temporal delimiter is added)."""
    seq, _ = check_payload(payload, width, height)
    payload = bytes(payload)
    ftyp = _box(b"ftyp", b"avif" + b"\0\0\0\0" + b"".join(_FTYP_BASE) + _profile_brand(seq))

    channels = 1 if seq.mono_chrome else 3
    cp, tc, mc, full_range = _colour(seq)
    ipco = _box(b"ipco", b"".join((
        _full_box(b"ispe", 0, 0, struct.pack(">II", width, height)),                 # index 1
        _full_box(b"pixi", 0, 0, bytes((channels,)) + bytes((seq.bit_depth,)) * channels),  # 2
        _box(b"av1C", _av1c(seq)),                                                   # 3
        _box(b"colr", b"nclx" + struct.pack(">HHHB", cp, tc, mc, full_range << 7)),  # 4
    )))
    # ispe, pixi, av1C (essential), colr: flags 0, so 7-bit property indices
    ipma = _full_box(b"ipma", 0, 0, struct.pack(">IHB", 1, ITEM_ID, 4) + bytes((0x01, 0x02, 0x83, 0x04)))
    item_length = len(TEMPORAL_DELIMITER) + len(payload)

    def meta_box(item_offset: int) -> bytes:
        return _full_box(b"meta", 0, 0, b"".join((
            _full_box(b"hdlr", 0, 0, b"\0\0\0\0" + b"pict" + b"\0" * 12 + b"\0"),
            _full_box(b"pitm", 0, 0, struct.pack(">H", ITEM_ID)),
            # offset_size 4, length_size 4, base_offset_size 0; one item with one extent
            _full_box(b"iloc", 0, 0, struct.pack(">BBHHHHII", 0x44, 0x00, 1, ITEM_ID, 0, 1,
                                                 item_offset, item_length)),
            _full_box(b"iinf", 0, 0, struct.pack(">H", 1)
                      + _full_box(b"infe", 2, 0, struct.pack(">HH", ITEM_ID, 0) + b"av01" + ITEM_NAME)),
            _box(b"iprp", ipco + ipma),
        )))

    meta_len = len(meta_box(0))  # the meta box's size does not depend on the offset
    item_offset = len(ftyp) + meta_len + 8
    if item_offset + item_length > MAX_FILE_SIZE:
        raise Av1Error("the AV1 payload is too large for a 32-bit AVIF file")
    mdat_header = struct.pack(">I", 8 + item_length) + b"mdat"
    return b"".join((ftyp, meta_box(item_offset), mdat_header, TEMPORAL_DELIMITER, payload))


# ---------------------------------------------------------------------------------------------
# Reading


def _boxes(data: bytes, start: int, end: int, where: str) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes that exactly fill data[start:end]."""
    out, pos = [], start
    while pos < end:
        if end - pos < 8:
            raise Av1Error(f"truncated box header in {where}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8:  # 0 (to end of file) and 1 (64-bit size) are never written by libavif here
            raise Av1Error(f"unsupported box size {size} in {where}")
        if size > end - pos:
            raise Av1Error(f"box {kind!r} runs past the end of {where}")
        out.append((kind, pos + 8, pos + size))
        pos += size
    return out


def _expect(boxes: list[tuple[bytes, int, int]], kinds: tuple[bytes, ...], where: str) -> None:
    got = tuple(b[0] for b in boxes)
    if got != kinds:
        names = ", ".join(k.decode("latin-1") for k in got) or "nothing"
        raise Av1Error(f"unexpected boxes in {where}: {names}")


def _full_header(data: bytes, start: int, end: int, kind: str, versions: tuple[int, ...]) -> int:
    """Check a FullBox's version (and zero flags); returns the position after the header."""
    if end - start < 4:
        raise Av1Error(f"truncated '{kind}' box")
    version, flags = data[start], int.from_bytes(data[start + 1:start + 4], "big")
    if version not in versions or flags:
        raise Av1Error(f"unsupported '{kind}' box version {version} flags {flags}")
    return start + 4


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int, kind: str) -> None:
        self.data, self.pos, self.end, self.kind = data, pos, end, kind

    def uint(self, n: int) -> int:
        if n == 0:
            return 0
        if self.end - self.pos < n:
            raise Av1Error(f"truncated '{self.kind}' box")
        value = int.from_bytes(self.data[self.pos:self.pos + n], "big")
        self.pos += n
        return value

    def done(self) -> None:
        if self.pos != self.end:
            raise Av1Error(f"trailing bytes in the '{self.kind}' box")


def split_avif(data: bytes) -> bytes:
    """The AV1 OBUs of a single-image AVIF file as Pillow writes it, without the temporal delimiter.

    Raises :class:`Av1Error` for anything but one colour item without alpha, ICC, Exif, XMP or
    transforms, and for any file that :func:`build_avif` would not rebuild byte for byte.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise Av1Error("the AVIF file must be bytes")
    data = bytes(data)
    top = _boxes(data, 0, len(data), "the file")
    _expect(top, (b"ftyp", b"meta", b"mdat"), "the file")
    (_, fs, fe), (_, ms, me), (_, ds, de) = top

    brands = [data[i:i + 4] for i in range(fs, fe, 4)]
    if (fe - fs) % 4 or len(brands) < 2 or brands[0] != b"avif" or brands[1] != b"\0\0\0\0" \
            or tuple(brands[2:5]) != _FTYP_BASE or len(brands) > 6:
        raise Av1Error("unexpected brands in the 'ftyp' box (not a libavif still image)")

    meta = _boxes(data, _full_header(data, ms, me, "meta", (0,)), me, "'meta'")
    if any(b[0] == b"iref" for b in meta):
        raise Av1Error("the file has item references (an alpha, Exif or XMP item)")
    _expect(meta, (b"hdlr", b"pitm", b"iloc", b"iinf", b"iprp"), "'meta'")
    (_, hs, he), (_, ps, pe), (_, ls, le), (_, ins, ine), (_, rs, re_) = meta

    r = _Reader(data, _full_header(data, hs, he, "hdlr", (0,)), he, "hdlr")
    r.uint(4)
    if r.uint(4) != int.from_bytes(b"pict", "big"):
        raise Av1Error("the 'hdlr' handler is not 'pict'")

    r = _Reader(data, _full_header(data, ps, pe, "pitm", (0,)), pe, "pitm")
    primary = r.uint(2)
    r.done()

    r = _Reader(data, _full_header(data, ins, ine, "iinf", (0,)), ine, "iinf")
    entries = r.uint(2)
    if entries != 1:
        raise Av1Error(f"the file has {entries} items, not one (alpha, Exif or XMP?)")
    infe = _boxes(data, r.pos, ine, "'iinf'")
    _expect(infe, (b"infe",), "'iinf'")
    r = _Reader(data, _full_header(data, infe[0][1], infe[0][2], "infe", (2,)), infe[0][2], "infe")
    item_id, _protection, item_type = r.uint(2), r.uint(2), r.uint(4).to_bytes(4, "big")
    if item_id != primary:
        raise Av1Error("the only item is not the primary item")
    if item_type != b"av01":
        raise Av1Error(f"the primary item is of type {item_type!r}, not 'av01'")

    # iloc (ISO/IEC 14496-12 8.11.3), versions 0-2, construction method 0 (file offsets)
    r = _Reader(data, _full_header(data, ls, le, "iloc", (0, 1, 2)), le, "iloc")
    version = data[ls]
    sizes = r.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes = r.uint(1)
    base_offset_size, index_size = sizes >> 4, (sizes & 15) if version else 0
    if any(s not in (0, 4, 8) for s in (offset_size, length_size, base_offset_size, index_size)):
        raise Av1Error("invalid field sizes in the 'iloc' box")
    count = r.uint(2) if version < 2 else r.uint(4)
    if count != 1:
        raise Av1Error(f"the 'iloc' box locates {count} items, not one")
    if (r.uint(2) if version < 2 else r.uint(4)) != primary:
        raise Av1Error("the 'iloc' box does not locate the primary item")
    if version and r.uint(2) & 15:
        raise Av1Error("the primary item is not stored at a file offset (iloc construction method)")
    if r.uint(2):
        raise Av1Error("the primary item is in another file (iloc data_reference_index)")
    base = r.uint(base_offset_size)
    if r.uint(2) != 1:
        raise Av1Error("the primary item is not stored in one extent")
    r.uint(index_size)
    offset, length = base + r.uint(offset_size), r.uint(length_size)
    r.done()
    if length == 0 or offset < ds or offset + length > de:
        raise Av1Error("the 'iloc' extent lies outside the 'mdat' box")

    iprp = _boxes(data, rs, re_, "'iprp'")
    _expect(iprp, (b"ipco", b"ipma"), "'iprp'")
    ipco = _boxes(data, iprp[0][1], iprp[0][2], "'ipco'")
    props = [b[0] for b in ipco]
    if any(kind == b"colr" and data[start:start + 4] != b"nclx" for kind, start, _ in ipco):
        raise Av1Error("the file has an ICC profile, which the AV1 base does not store")
    for unwanted, why in ((b"auxC", "an auxiliary (alpha) image"), (b"irot", "a rotation"),
                          (b"imir", "a mirror"), (b"clap", "a crop")):
        if unwanted in props:
            raise Av1Error(f"the file has {why} property, which the AV1 base does not store")
    if b"av1C" not in props or b"ispe" not in props:
        raise Av1Error("the primary item has no 'av1C' or 'ispe' property")
    ispe = next(b for b in ipco if b[0] == b"ispe")
    r = _Reader(data, _full_header(data, ispe[1], ispe[2], "ispe", (0,)), ispe[2], "ispe")
    width, height = r.uint(4), r.uint(4)
    r.done()

    item = data[offset:offset + length]
    if not item.startswith(TEMPORAL_DELIMITER):
        raise Av1Error("the primary item does not start with a temporal delimiter OBU")
    payload = item[len(TEMPORAL_DELIMITER):]
    if build_avif(payload, width, height) != data:
        raise Av1Error("the AVIF file is not laid out as build_avif rebuilds it "
                       "(another libavif version?)")
    return payload
