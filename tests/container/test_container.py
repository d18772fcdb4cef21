"""Tests for the pure-Python ``.cgdm`` container (cgdm_codec.container)."""

from __future__ import annotations

import binascii
import dataclasses
import json
import os
import random
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from cgdm_codec import container as C
from cgdm_codec.container import (
    BASE_CODEC_STREAMS,
    CgdmFile,
    ColourMode,
    TEXTURE_MAP,
    FormatError,
    Metadata,
    decode_varint,
    encode_extensions,
    encode_varint,
    framing_overhead,
    parse,
    read_file,
    serialize,
    summary,
)

REPO = Path(__file__).resolve().parents[2]

# The worked example of docs/format.md (section "Worked example").  This is a
# golden vector: if it changes, the on-disk format changed.  Section order is
# syntax, alpha, z, y; every section but the last (y) is length-prefixed.
GOLDEN_HEX = (
    "43 47 44 01 3b 01 1a 2b 3c 4d c8 01 02 ac 02 14 00 0e 78 da fb ff 7f 14 0c 26"
    " 00 00 22 90 8e 80 03 01 02 03 04 05 06 07 08 df 14 4b 08"
)
GOLDEN = CgdmFile(
    quality=3,
    width=200,
    height=2,
    weights_id=bytes.fromhex("1a2b3c4d"),
    base_streams=(b"\x01\x02\x03", b"\x04\x05\x06\x07\x08"),
    colour_mode=ColourMode.LA,
    seed=300,
    steps=20,
    syntax=b"",
    alpha=zlib.compress(b"\xff" * 400, 9),
)


def crc32_bitwise(data: bytes) -> int:
    """Textbook bit-at-a-time CRC-32 (ISO-HDLC), independent of zlib/binascii."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint_by_hand(value: int) -> bytes:
    """Unsigned LEB128, written independently of the module under test."""
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def build_by_hand(f: CgdmFile) -> bytes:
    """The documented layout, assembled without calling ``serialize``."""
    packed = f.quality | (int(f.colour_mode) << 3) | (0x20 if f.steps is not None else 0)
    body = b"CGD" + bytes([1, packed, f.base_codec]) + f.weights_id
    body += varint_by_hand(f.width) + varint_by_hand(f.height) + varint_by_hand(f.seed)
    sections = []
    if f.steps is not None:
        body += bytes([f.steps])
        sections.append(f.syntax)
    if f.colour_mode in (ColourMode.RGBA, ColourMode.LA):
        sections.append(f.alpha)
    sections += list(f.base_streams)
    for section in sections[:-1]:
        body += varint_by_hand(len(section)) + section
    body += sections[-1]  # no length prefix: runs up to the checksum
    return body + crc32_bitwise(body).to_bytes(4, "little")


def last_section_start(data: bytes) -> int:
    """Offset of the unprefixed last section of a valid file."""
    f = parse(data)
    return len(data) - 4 - len(f.sections[-1])


def make(**overrides) -> CgdmFile:
    fields = dict(
        quality=3,
        width=64,
        height=48,
        weights_id=b"\x00\x11\x22\x33",
        base_streams=(b"zz" * 5, b"y" * 40),
        colour_mode=ColourMode.RGB,
        seed=12345,
        steps=None,
        syntax=None,
        alpha=None,
    )
    fields.update(overrides)
    return CgdmFile(**fields)


def small_valid_files() -> list[bytes]:
    """A few small valid files covering every optional part."""
    return [
        serialize(make()),
        serialize(make(steps=8, syntax=b"\x05syn")),
        serialize(make(colour_mode=ColourMode.LA, steps=200, syntax=b"", alpha=b"\x78\x9c\x01")),
        serialize(make(colour_mode=ColourMode.RGBA, alpha=b"", width=1000, height=700, seed=2**32 - 1)),
        bytes.fromhex(GOLDEN_HEX),
    ]


def random_file(rng: random.Random) -> CgdmFile:
    mode = ColourMode(rng.randrange(4))
    diffusion = rng.random() < 0.5
    # mix tiny and multi-byte-varint sizes
    def blob() -> bytes:
        n = rng.choice([0, 1, rng.randrange(2, 127), rng.randrange(127, 400), rng.randrange(16000, 17000)])
        return rng.randbytes(n)

    width = rng.choice([1, 127, 128, rng.randrange(1, C.MAX_DIM + 1)])
    max_h = min(C.MAX_DIM, C.MAX_PIXELS // width)
    height = rng.choice([1, max_h, rng.randrange(1, max_h + 1)])
    return CgdmFile(
        quality=rng.randint(1, 6),
        width=width,
        height=height,
        weights_id=rng.randbytes(4),
        base_streams=(blob(), blob()),
        colour_mode=mode,
        seed=rng.choice([0, 127, 128, 2**32 - 1, rng.getrandbits(32)]),
        steps=rng.randint(1, 255) if diffusion else None,
        syntax=blob() if diffusion else None,
        alpha=blob() if mode.has_alpha else None,
    )


# --------------------------------------------------------------------------
# varint
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2**28 - 1, b"\xff\xff\xff\x7f"),
        (2**28, b"\x80\x80\x80\x80\x01"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_varint_known_values(value, encoded):
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))
    # decoding stops at the end of the varint and honours the start offset
    assert decode_varint(b"\xaa" + encoded + b"\x99", 1) == (value, 1 + len(encoded))


def test_varint_random_round_trip():
    rng = random.Random(1)
    for _ in range(2000):
        v = rng.getrandbits(rng.randint(1, 32))
        enc = encode_varint(v)
        assert 1 <= len(enc) <= 5
        assert decode_varint(enc) == (v, len(enc))


@pytest.mark.parametrize("value", [-1, 2**32, 2**40])
def test_varint_encode_out_of_range(value):
    with pytest.raises(FormatError):
        encode_varint(value)


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"\x80\x00", "non-canonical"),  # 0 written in two bytes
        (b"\x81\x00", "non-canonical"),  # 1 with a redundant zero group
        (b"\xff\x80\x00", "non-canonical"),
        (b"\x80\x80\x80\x80\x00", "non-canonical"),
        (b"\x80\x80\x80\x80\x80\x01", "longer than 5"),
        (b"\xff\xff\xff\xff\xff\x01", "longer than 5"),
        (b"\x80\x80\x80\x80\x10", "32 bits"),  # 2**32
        (b"\xff\xff\xff\xff\x7f", "32 bits"),
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\xff\xff\xff\xff", "truncated"),
    ],
)
def test_varint_rejects(data, fragment):
    with pytest.raises(FormatError, match=fragment):
        decode_varint(data)


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------


def test_round_trip_random_fields():
    rng = random.Random(20240601)
    seen = set()
    for _ in range(300):
        f = random_file(rng)
        data = serialize(f)
        g = parse(data)
        assert g == f
        assert serialize(g) == data
        assert len(data) == f.payload_bytes + framing_overhead(f)
        seen.add((f.colour_mode, f.diffusion))
    assert len(seen) == 8  # every colour mode with and without diffusion


@pytest.mark.parametrize("mode", list(ColourMode))
@pytest.mark.parametrize("diffusion", [False, True])
def test_round_trip_every_mode(mode, diffusion):
    f = make(
        colour_mode=mode,
        steps=50 if diffusion else None,
        syntax=b"syntax!" if diffusion else None,
        alpha=b"alpha-plane" if mode.has_alpha else None,
    )
    data = serialize(f)
    g = parse(data)
    assert g == f
    assert g.colour_mode is mode
    assert g.diffusion is diffusion
    # the packed byte carries exactly the expected bits
    assert data[4] == 3 | (int(mode) << 3) | (0x20 if diffusion else 0)


def test_parse_accepts_bytearray_and_memoryview():
    data = serialize(make())
    assert parse(bytearray(data)) == parse(memoryview(data)) == make()


def test_constructor_normalises_types():
    f = make(base_streams=[bytearray(b"a"), memoryview(b"b")], colour_mode=1, weights_id=bytearray(4))
    assert f.base_streams == (b"a", b"b")
    assert f.colour_mode is ColourMode.L
    assert isinstance(f.weights_id, bytes)
    hash(f)  # frozen and hashable


# --------------------------------------------------------------------------
# golden vector / documentation example
# --------------------------------------------------------------------------


def test_golden_vector():
    data = bytes.fromhex(GOLDEN_HEX)
    assert len(data) == 45
    assert serialize(GOLDEN) == data
    assert parse(data) == GOLDEN
    assert serialize(parse(data)) == data
    assert len(data) - GOLDEN.payload_bytes == framing_overhead(GOLDEN) == 23


def test_golden_vector_checked_independently():
    data = bytes.fromhex(GOLDEN_HEX)
    # checksum: CRC-32 of every byte before the last 4, stored little-endian,
    # recomputed with binascii and with a bitwise implementation
    assert data[-4:] == bytes.fromhex("df 14 4b 08")
    assert binascii.crc32(data[:-4]) == crc32_bitwise(data[:-4]) == 0x084B14DF
    # the layout assembled by hand, field by field (docs/format.md section 7)
    alpha = zlib.compress(b"\xff" * 400, 9)
    assert alpha == bytes.fromhex("78 da fb ff 7f 14 0c 26 00 00 22 90 8e 80")
    body = (
        b"CGD"                        # 0  magic
        + b"\x01"                     # 3  version
        + b"\x3b"                     # 4  packed: quality 3 | LA << 3 | diffusion
        + b"\x01"                     # 5  base codec 1
        + bytes.fromhex("1a2b3c4d")   # 6  weights id
        + b"\xc8\x01"                 # 10 width 200
        + b"\x02"                     # 12 height 2
        + b"\xac\x02"                 # 13 seed 300
        + b"\x14"                     # 15 steps 20
        + b"\x00"                     # 16 syntax: length 0
        + b"\x0e" + alpha             # 17 alpha: length 14, 14 bytes
        + b"\x03" + b"\x01\x02\x03"   # 32 z: length 3, 3 bytes
        + b"\x04\x05\x06\x07\x08"      # 36 y: last section, no length prefix
    )
    assert len(body) == 41
    assert body + binascii.crc32(body).to_bytes(4, "little") == data
    assert build_by_hand(GOLDEN) == data


@pytest.mark.parametrize("mode", list(ColourMode))
@pytest.mark.parametrize("diffusion", [False, True])
def test_layout_matches_hand_built_file(mode, diffusion):
    f = make(
        colour_mode=mode,
        steps=7 if diffusion else None,
        syntax=b"S" * 200 if diffusion else None,   # 2-byte length prefix
        alpha=b"A" * 5 if mode.has_alpha else None,
        base_streams=(b"z" * 130, b"y" * 20000),
    )
    data = serialize(f)
    assert data == build_by_hand(f)
    # the last section (y) carries no length prefix: it ends right at the CRC
    assert data[-4 - 20000 : -4] == b"y" * 20000
    assert data[-4 - 20000 - 130 - 2 : -4 - 20000] == b"\x82\x01" + b"z" * 130
    assert f.named_sections()[-1][0] == "y"
    expected_order = (["syntax"] if diffusion else []) + (["alpha"] if mode.has_alpha else []) + ["z", "y"]
    assert [name for name, _ in f.named_sections()] == expected_order


def test_last_section_may_be_empty():
    f = make(base_streams=(b"zzz", b""))
    data = serialize(f)
    assert data == build_by_hand(f)
    assert parse(data) == f
    # a prefixed length that consumes every byte up to the checksum is valid:
    # it leaves an empty last section
    g = make(steps=3, syntax=b"", base_streams=(b"", b""))
    assert parse(serialize(g)) == g


def test_docs_worked_example_matches_golden():
    doc = REPO / "docs" / "format.md"
    if not doc.exists():
        pytest.skip("docs/format.md not present")
    text = doc.read_text(encoding="utf-8")
    m = re.search(r"<!-- example-hex -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, "worked-example hex block not found in docs/format.md"
    hex_digits = re.sub(r"[^0-9a-fA-F]", "", m.group(1))
    assert bytes.fromhex(hex_digits) == bytes.fromhex(GOLDEN_HEX)


# --------------------------------------------------------------------------
# corruption: truncation, bit flips, appended bytes
# --------------------------------------------------------------------------


def test_every_truncation_raises_format_error():
    for data in small_valid_files():
        # Cutting before the last section's start + 4 leaves a prefixed length
        # (or a header field) that runs into the last 4 bytes: "truncated".
        # A longer cut only shortens the unprefixed last section, so the
        # checksum catches it.
        boundary = last_section_start(data) + 4
        for cut in range(len(data)):
            fragment = "truncated" if cut < boundary else r"corrupted.*checksum mismatch"
            with pytest.raises(FormatError, match=fragment):
                parse(data[:cut])


def test_every_byte_change_raises_format_error():
    rng = random.Random(7)
    for data in small_valid_files():
        for i in range(len(data)):
            for new in {data[i] ^ 0xFF, (data[i] + 1) & 0xFF, rng.randrange(256)} - {data[i]}:
                bad = data[:i] + bytes([new]) + data[i + 1 :]
                with pytest.raises(FormatError):
                    parse(bad)


def test_every_bit_flip_raises_format_error():
    for data in small_valid_files():
        for i in range(len(data)):
            for bit in range(8):
                bad = bytearray(data)
                bad[i] ^= 1 << bit
                with pytest.raises(FormatError):
                    parse(bytes(bad))


def test_bit_flip_in_large_section_is_a_checksum_error():
    f = make(base_streams=(b"z" * 300, bytes(range(256)) * 80))
    data = bytearray(serialize(f))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(FormatError, match=r"corrupted.*checksum mismatch"):
        parse(bytes(data))


# Appended bytes cannot be told apart from the unprefixed last section; the
# checksum (always the last 4 bytes of the file) detects them.
@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 3, b"junk", b"\x00" * 4, b"\x00" * 100, b"\xff" * 7])
def test_appended_bytes(extra):
    for data in small_valid_files():
        with pytest.raises(FormatError, match=r"corrupted.*checksum mismatch"):
            parse(data + extra)


def test_concatenated_files_rejected():
    files = small_valid_files()
    for a in files:
        for b in files:
            with pytest.raises(FormatError, match=r"corrupted.*checksum mismatch"):
                parse(a + b)


def test_appended_crc_residue_is_not_detected():
    # Known limitation documented in docs/format.md (section 3.5): CRC-32 of
    # "message + its own little-endian CRC" is the constant 0x2144DF1C, so
    # appending exactly these 4 bytes to ANY valid file gives a valid file
    # whose last section has grown by the old checksum.  Any other appended
    # data is caught with probability 1 - 2**-32.
    residue = bytes.fromhex("1c df 44 21")
    for data in small_valid_files():
        g = parse(data + residue)
        f = parse(data)
        assert g.sections[:-1] == f.sections[:-1]
        assert g.sections[-1] == f.sections[-1] + data[-4:]


# --------------------------------------------------------------------------
# header errors and validation order
# --------------------------------------------------------------------------


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def reheader(data: bytes, **byte_at: int) -> bytes:
    """Patch fixed-header bytes (version=, packed=, codec=) and fix the CRC."""
    b = bytearray(data[:-4])
    for name, value in byte_at.items():
        b[{"version": 3, "packed": 4, "codec": 5}[name]] = value
    return with_crc(bytes(b))


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"PK", b"cgd" + b"\x00" * 30, b"\xffCGD"])
def test_wrong_magic(data):
    with pytest.raises(FormatError, match=r"not a \.cgdm file"):
        parse(data)


@pytest.mark.parametrize("data", [b"", b"C", b"CG", b"CGD", b"CGD\x01", b"CGD\x01\x03\x01\x00\x00\x00\x00\x01"])
def test_short_input_truncated(data):
    with pytest.raises(FormatError, match="truncated"):
        parse(data)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unsupported_version(version):
    bad = reheader(serialize(make()), version=version)
    with pytest.raises(
        FormatError, match=rf"unsupported format version {version} \(this cgdm reads version 1\)"
    ):
        parse(bad)


def test_version_checked_before_checksum():
    data = bytearray(serialize(make()))
    data[3] = 2  # CRC now wrong too, but the version message wins
    with pytest.raises(FormatError, match="unsupported format version 2"):
        parse(bytes(data))


@pytest.mark.parametrize("packed, fragment", [
    (0xC3, "truncated|metadata|extensions"),  # bit 7 is the extensions flag (3.7)
    (0x83, "truncated|extensions"),
    (0x43, "truncated|metadata"),  # bit 6 is the metadata flag: the sections no longer fit
    (0x00, "quality 0"),
    (0x07, "quality 7"),
    (0x3F, "quality 7"),
])
def test_bad_packed_byte(packed, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse(reheader(serialize(make()), packed=packed))


@pytest.mark.parametrize("codec", [0, 4, 255])
def test_unknown_base_codec(codec):
    with pytest.raises(FormatError, match=f"unknown base codec id {codec}"):
        parse(reheader(serialize(make()), codec=codec))


def header_with_dims(width: int, height: int, tail: bytes = b"") -> bytes:
    body = b"CGD\x01\x03\x01" + b"wid!" + encode_varint(width) + encode_varint(height) + tail
    return with_crc(body + b"\x00" * 8)


@pytest.mark.parametrize("width, height, fragment", [
    (0, 10, "invalid width 0"),
    (40000, 10, "invalid width 40000"),
    (10, 0, "invalid height 0"),
    (10, 40000, "invalid height 40000"),
    (20000, 20000, "image too large"),
    (32768, 32768, "image too large"),
    (2**32 - 1, 2**32 - 1, "invalid width"),
])
def test_absurd_dimensions_rejected_by_parse(width, height, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse(header_with_dims(width, height))


def test_width_checked_before_height_is_read():
    # width 0 followed by a garbage (over-long) varint: the width error wins
    body = b"CGD\x01\x03\x01wid!" + b"\x00" + b"\xff" * 10
    with pytest.raises(FormatError, match="invalid width 0"):
        parse(with_crc(body))


def test_max_dimensions_accepted():
    for w, h in [(32768, 2048), (2048, 32768), (8192, 8192), (1, 32768), (32768, 1)]:
        f = make(width=w, height=h)
        assert parse(serialize(f)) == f


@pytest.mark.parametrize("width, height", [(0, 10), (40000, 10), (10, 40000), (20000, 20000), (-1, 5)])
def test_absurd_dimensions_rejected_by_constructor(width, height):
    with pytest.raises(FormatError):
        make(width=width, height=height)


def test_zero_steps_rejected_by_parse():
    data = bytearray(serialize(make(steps=1, syntax=b"")))
    steps_pos = 10 + len(encode_varint(64)) + len(encode_varint(48)) + len(encode_varint(12345))
    assert data[steps_pos] == 1
    data[steps_pos] = 0
    with pytest.raises(FormatError, match="step count 0"):
        parse(with_crc(bytes(data[:-4])))


def test_non_canonical_varint_in_file_rejected():
    good = serialize(make(width=5))
    body = good[:10] + b"\x85\x00" + good[11:-4]  # width 5 written as 2 bytes
    with pytest.raises(FormatError, match="non-canonical"):
        parse(with_crc(body))


def test_section_length_past_end_is_truncated():
    good = serialize(make(base_streams=(b"", b"")))
    # body = header, z length 00, (empty, unprefixed y); replace z's length
    # with a huge one
    assert good[-5] == 0
    body = good[:-5] + encode_varint(2**32 - 1)
    with pytest.raises(FormatError, match="truncated"):
        parse(with_crc(body))


@pytest.mark.parametrize("extra_len, ok", [(0, True), (1, False), (4, False)])
def test_prefixed_length_may_not_reach_into_checksum(extra_len, ok):
    header = serialize(make(base_streams=(b"", b"")))[:-5]
    payload = b"p" * 10
    # z claims its 10 bytes plus extra_len bytes that only the CRC could supply
    body = header + encode_varint(len(payload) + extra_len) + payload
    data = with_crc(body)
    if ok:
        f = parse(data)
        assert f.base_streams == (payload, b"")
    else:
        with pytest.raises(FormatError, match="truncated"):
            parse(data)


# --------------------------------------------------------------------------
# serialize-side validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    dict(quality=0),
    dict(quality=7),
    dict(version=2),
    dict(base_codec=2),
    dict(weights_id=b"abc"),
    dict(weights_id=b"abcde"),
    dict(weights_id="abcd"),
    dict(base_streams=(b"z",)),
    dict(base_streams=(b"z", b"y", b"x")),
    dict(base_streams=b"zy"),
    dict(seed=-1),
    dict(seed=2**32),
    dict(steps=10),                       # diffusion without syntax
    dict(syntax=b""),                     # syntax without steps
    dict(steps=0, syntax=b""),
    dict(steps=256, syntax=b""),
    dict(colour_mode=ColourMode.RGBA),    # missing alpha
    dict(colour_mode=ColourMode.LA),
    dict(alpha=b"x"),                     # alpha on RGB
    dict(colour_mode=ColourMode.L, alpha=b"x"),
    dict(colour_mode=4),
    dict(quality=3.0),
    dict(width=True),
])
def test_invalid_objects_rejected(overrides):
    with pytest.raises(FormatError):
        make(**overrides)


def test_serialize_revalidates():
    f = make()
    object.__setattr__(f, "quality", 9)  # bypass the frozen constructor check
    with pytest.raises(FormatError, match="quality 9"):
        serialize(f)


# --------------------------------------------------------------------------
# read_file, overhead, summary
# --------------------------------------------------------------------------


def test_read_file(tmp_path):
    f = make(steps=4, syntax=b"s")
    p = tmp_path / "a.cgdm"
    p.write_bytes(serialize(f))
    assert read_file(p) == f
    assert read_file(str(p)) == f


def test_read_file_size_limit(tmp_path, monkeypatch):
    data = serialize(make())
    p = tmp_path / "a.cgdm"
    p.write_bytes(data)
    monkeypatch.setattr(C, "MAX_FILE_BYTES", len(data) - 1)
    with pytest.raises(FormatError, match="too large"):
        read_file(p)
    monkeypatch.setattr(C, "MAX_FILE_BYTES", len(data))
    assert read_file(p) == make()


def test_read_file_sparse_huge_file_rejected_without_reading(tmp_path):
    p = tmp_path / "huge.cgdm"
    with open(p, "wb") as fh:
        fh.truncate(C.MAX_FILE_BYTES + 1)  # sparse: costs no disk or memory
    with pytest.raises(FormatError, match="too large"):
        read_file(p)


def test_read_file_missing(tmp_path):
    with pytest.raises(OSError):
        read_file(tmp_path / "nope.cgdm")


def typical_file(seed: int = 0) -> CgdmFile:
    rng = random.Random(3)
    return CgdmFile(
        quality=3,
        width=768,
        height=512,
        weights_id=rng.randbytes(4),
        base_streams=(rng.randbytes(300), rng.randbytes(20000)),
        colour_mode=ColourMode.RGB,
        seed=seed,
        steps=50,
        syntax=rng.randbytes(12),
    )


# Exact v1 framing of the typical diffusion file: fixed header 10, width 2,
# height 2, seed 1..5, steps 1, length prefixes 1 (syntax, 12) + 2 (z, 300),
# no prefix on y (20000, the last section), CRC 4  ->  23 + (seed bytes - 1).
@pytest.mark.parametrize("seed, expected", [
    (0, 23), (127, 23), (128, 24), (2**14 - 1, 24), (2**14, 25), (2**21, 26), (2**28, 27), (2**32 - 1, 27),
])
def test_typical_framing_overhead(seed, expected):
    f = typical_file(seed)
    data = serialize(f)
    overhead = len(data) - f.payload_bytes
    assert overhead == framing_overhead(f) == expected
    if seed < 2**14:  # the seed fits in a 1- or 2-byte varint
        assert overhead <= 24
    assert overhead <= 27
    # 3 bytes fewer than a layout that also length-prefixed y (varint(20000) is 3 bytes)
    assert len(encode_varint(20000)) == 3


# Base-only file (no diffusion, no alpha; same image and streams): fixed
# header 10, width 2, height 2, seed 1..5, z prefix 2, CRC 4 -> 21 + (seed bytes - 1).
@pytest.mark.parametrize("seed, expected", [
    (0, 21), (127, 21), (128, 22), (2**14, 23), (2**21, 24), (2**28, 25), (2**32 - 1, 25),
])
def test_base_only_framing_overhead(seed, expected):
    f = dataclasses.replace(typical_file(seed), steps=None, syntax=None)
    data = serialize(f)
    assert len(data) - f.payload_bytes == framing_overhead(f) == expected
    assert parse(data) == f


def test_minimum_file_size():
    f = make(width=1, height=1, seed=0, base_streams=(b"", b""))
    data = serialize(f)
    assert len(data) == 18 == C.MIN_FILE_BYTES + 1  # one length prefix (z) beyond the minimum
    assert parse(data) == f


def test_summary():
    f = typical_file()
    n = len(serialize(f))
    s = summary(f, n)
    json.dumps(s)  # JSON-ready
    assert s["width"] == 768 and s["height"] == 512 and s["quality"] == 3
    assert s["bytes"] == n
    assert s["bpp"] == round(8 * n / (768 * 512), 4)
    assert s["format_version"] == 1
    assert s["seed"] == f.seed
    assert s["colour_mode"] == "RGB"
    assert s["base_codec"] == 1
    assert s["weights_id"] == f.weights_id.hex() and len(s["weights_id"]) == 8
    assert s["diffusion"] is True and s["steps"] == 50
    assert s["sections"] == {"z": 300, "y": 20000, "syntax": 12}
    assert list(s["sections"]) == ["syntax", "z", "y"]  # file order
    assert s["framing_bytes"] == n - f.payload_bytes
    s2 = summary(GOLDEN, len(GOLDEN_HEX.split()))
    assert s2["sections"] == {"z": 3, "y": 5, "syntax": 0, "alpha": 14}
    assert list(s2["sections"]) == ["syntax", "alpha", "z", "y"]
    assert s2["framing_bytes"] == 23
    assert s2["colour_mode"] == "LA"
    s3 = summary(make(), 100)
    assert s3["diffusion"] is False and s3["steps"] is None and "syntax" not in s3["sections"]


def test_colour_mode_has_alpha():
    assert [m.has_alpha for m in ColourMode] == [False, False, True, True]
    assert BASE_CODEC_STREAMS == {1: 2, 2: 1, 3: 1}


def test_dataclass_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        make().quality = 4  # type: ignore[misc]


# --------------------------------------------------------------------------
# import hygiene
# --------------------------------------------------------------------------


def test_import_is_lightweight():
    code = (
        "import sys, json\n"
        "import cgdm_codec.container\n"
        "print(json.dumps([m for m in ('torch', 'numpy', 'compressai') if m in sys.modules]))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# -- extensions section (3.7) ---------------------------------------------------------

def diffusion_file(**overrides) -> CgdmFile:
    return make(steps=1, syntax=b"\x05\x06", **overrides)


def test_extensions_round_trip_and_set_bit_7():
    f = diffusion_file(extensions={TEXTURE_MAP: b"\x06map", 200: b"later"})
    data = serialize(f)
    assert data[4] & 0x80
    g = parse(data)
    assert g.extensions == ((TEXTURE_MAP, b"\x06map"), (200, b"later"))
    assert g.extension(TEXTURE_MAP) == b"\x06map" and g.extension(2) is None
    assert serialize(g) == data
    assert [n for n, _ in g.named_sections()] == ["syntax", "extensions", "z", "y"]
    assert summary(g, len(data))["extensions"] == {"texture map": 4, "kind 200": 5}


def test_a_file_without_extensions_is_unchanged():
    data = serialize(diffusion_file())
    assert not data[4] & 0x80 and parse(data).extensions == ()
    assert serialize(diffusion_file(extensions={})) == data


def test_extension_section_comes_after_metadata():
    f = diffusion_file(extensions={TEXTURE_MAP: b"m"}, metadata=Metadata(xmp=b"<x/>"))
    assert [n for n, _ in parse(serialize(f)).named_sections()] == ["syntax", "metadata", "extensions", "z", "y"]


def extension_section_file(section: bytes) -> bytes:
    """A diffusion file whose extensions section holds ``section`` verbatim (CRC fixed)."""
    data = serialize(diffusion_file(extensions={TEXTURE_MAP: b"m"}))
    good = encode_extensions(((TEXTURE_MAP, b"m"),))
    body = data[:-4]
    i = body.index(encode_varint(len(good)) + good)
    body = body[:i] + encode_varint(len(section)) + section + body[i + len(encode_varint(len(good))) + len(good):]
    return with_crc(body)


@pytest.mark.parametrize("section, fragment", [
    (b"", "has no record"),
    (b"\x07\x00", "unknown record kind 7"),
    (b"\x00\x00", "unknown record kind 0"),
    (b"\x01\x00\x01\x00", "repeated or out of order"),
    (b"\x81\x00\x01\x00", "repeated or out of order"),
    (b"\x01\x05ab", "runs past the end"),
    (b"\x01\x80", "invalid extensions section"),
])
def test_bad_extensions_sections_are_refused(section, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse(extension_section_file(section))


def test_optional_extension_kinds_are_kept_and_the_texture_map_needs_diffusion():
    assert parse(extension_section_file(b"\x01\x01m\x90\x02hi")).extensions == ((1, b"m"), (0x90, b"hi"))
    with pytest.raises(FormatError, match="unknown extension record kind 9"):
        diffusion_file(extensions={9: b""})
    with pytest.raises(FormatError, match="needs the diffusion stage"):
        make(extensions={TEXTURE_MAP: b"m"})
