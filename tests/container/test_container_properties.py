"""Property tests (hypothesis) for the .cgdm parser: any bytes end in FormatError or a file.

tests/container/test_container.py flips every bit of fixed examples; these generate the files and
the damage. The coverage-guided run (atheris) lives in fuzz/fuzz_container.py.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgdm_codec import container as C
from cgdm_codec.container import (CgdmFile, ColourMode, FormatError, Limits, Metadata,
                                  decode_metadata, encode_metadata, encode_varint, parse,
                                  serialize, summary)
from cgdm_codec.errors import ImageError
from cgdm_codec.imageio import decode_alpha

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


EXIF_MAGICS = st.sampled_from([b"II*\x00", b"MM\x00*"])
metadata = st.builds(
    Metadata,
    icc=st.none() | st.binary(min_size=1, max_size=60),
    exif=st.none() | st.tuples(EXIF_MAGICS, st.binary(max_size=40)).map(b"".join),
    xmp=st.none() | st.binary(min_size=1, max_size=60),
)


@st.composite
def files(draw) -> CgdmFile:
    """Arbitrary valid files: every colour mode, with and without the diffusion sections."""
    mode = draw(st.sampled_from(list(ColourMode)))
    diffusion = draw(st.booleans())
    width = draw(st.integers(1, C.MAX_DIM))
    height = draw(st.integers(1, max(1, min(C.MAX_DIM, C.MAX_PIXELS // width))))
    blob = st.binary(max_size=40)
    return CgdmFile(
        quality=draw(st.integers(1, 6)), width=width, height=height,
        weights_id=draw(st.binary(min_size=4, max_size=4)),
        base_streams=(draw(blob), draw(blob)), colour_mode=mode,
        seed=draw(st.integers(0, C.MAX_U32)),
        steps=draw(st.integers(1, 255)) if diffusion else None,
        syntax=draw(blob) if diffusion else None,
        alpha=draw(blob) if mode.has_alpha else None,
        metadata=draw(st.none() | metadata),
    )


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def parse_or_format_error(data: bytes) -> CgdmFile | None:
    """The parser's contract: a file, or FormatError; never any other exception."""
    try:
        f = parse(data)
    except FormatError as e:
        msg = str(e)
        assert msg and "\n" not in msg
        return None
    # Whatever parses is canonical: it serialises back to exactly the same bytes.
    assert serialize(f) == data
    summary(f, len(data))
    return f


@SETTINGS
@given(files())
def test_round_trip(f):
    assert parse(serialize(f)) == f


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(data):
    parse_or_format_error(data)
    parse_or_format_error(b"CGD\x01" + data)


@SETTINGS
@given(st.binary(max_size=120))
def test_random_bodies_with_a_valid_checksum(data):
    """Past the checksum: the header and section checks alone must catch everything."""
    parse_or_format_error(with_crc(b"CGD\x01" + data))


@SETTINGS
@given(files(), st.data())
def test_mutated_files(f, data):
    raw = bytearray(serialize(f))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "set" and raw:
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and raw:
            del raw[i]
        else:
            del raw[i:]
    parse_or_format_error(bytes(raw))
    if len(raw) >= 4:  # the same damage with the checksum repaired reaches the deeper checks
        parse_or_format_error(with_crc(bytes(raw[:-4])))


@SETTINGS
@given(files())
def test_every_proper_prefix_is_truncated(f):
    data = serialize(f)
    for n in sorted({0, 1, 3, 9, 10, 12, len(data) // 2, len(data) - 1}):
        if n < len(data):
            with pytest.raises(FormatError):
                parse(data[:n])


@SETTINGS
@given(files(), st.integers(1, 4096), st.integers(1, 1 << 16))
def test_limits_refuse_what_exceeds_them(f, side, pixels):
    lim = Limits(min(side, C.MAX_DIM), min(pixels, C.MAX_PIXELS))
    data = serialize(f)
    fits = max(f.width, f.height) <= lim.max_side and f.width * f.height <= lim.max_pixels
    if fits:
        assert parse(data, lim) == f
    else:
        with pytest.raises(FormatError, match="limit"):
            parse(data, lim)


@SETTINGS
@given(st.binary(max_size=300), st.integers(1, 64), st.integers(1, 64))
def test_alpha_inflation_is_bounded(blob, w, h):
    """Garbage, or a zlib stream of the wrong size, is an ImageError, never a bigger buffer."""
    for data in (blob, zlib.compress(blob)):
        try:
            a = decode_alpha(data, w, h)
        except ImageError:
            continue
        assert a.shape == (h, w)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 1 << 20))
def test_zlib_bomb_in_alpha_is_refused(extra):
    """A highly compressible alpha section larger than width x height stops at the bound."""
    bomb = zlib.compress(b"\x00" * (64 * 64 + extra), 9)
    with pytest.raises(ImageError, match="wrong size"):
        decode_alpha(bomb, 64, 64)


# --------------------------------------------------------------------------
# the metadata section (docs/format.md 3.6)
# --------------------------------------------------------------------------


def file_with_metadata_section(section: bytes) -> bytes:
    """A checksummed RGB base-only file whose metadata section is ``section``."""
    f = CgdmFile(quality=3, width=8, height=8, weights_id=b"wid!", base_streams=(b"zz", b"yyy"))
    header = bytearray(C._header(f))
    header[4] |= 0x40
    body = bytes(header) + encode_varint(len(section)) + section + serialize(f)[len(header):-4]
    return with_crc(body)


@SETTINGS
@given(metadata)
def test_metadata_section_round_trip(md):
    if not md:
        assert CgdmFile(quality=1, width=1, height=1, weights_id=b"abcd", base_streams=(b"", b""),
                        metadata=md).metadata is None
        return
    section = encode_metadata(md)
    assert decode_metadata(section) == md
    assert parse(file_with_metadata_section(section)).metadata == md


@SETTINGS
@given(st.binary(max_size=200))
def test_random_metadata_sections(section):
    """Any bytes as a metadata section: a Metadata or a one-line FormatError, never else."""
    parse_or_format_error(file_with_metadata_section(section))


record = st.tuples(st.integers(0, 5), st.binary(max_size=30), st.integers(-1, 9),
                   st.integers(-2, 2), st.integers(-2, 2))


@SETTINGS
@given(st.lists(record, max_size=4))
def test_records_are_accepted_exactly_when_valid(records):
    """Build records (any kind, any zlib level, perhaps a wrong size or zlib length) and
    check the parser's verdict against the rules of 3.6."""
    section = bytearray()
    valid, previous, expect = bool(records), 0, {}
    for kind, data, level, size_error, zlen_error in records:
        packed = zlib.compress(data, level)
        size, zlen = len(data) + size_error, len(packed) + zlen_error
        if size < 0 or zlen < 0:
            size, zlen = len(data), len(packed)
            size_error = zlen_error = 0
        section.append(kind)
        section += encode_varint(size) + encode_varint(zlen) + packed
        name = C.METADATA_KINDS.get(kind)
        ok = (name is not None and kind > previous and size_error == 0 and zlen_error == 0
              and len(data) > 0 and (name != "exif" or data[:4] in (b"II*\x00", b"MM\x00*")))
        valid &= ok
        previous = max(previous, kind)
        if name:
            expect[name] = data
    data = file_with_metadata_section(bytes(section))
    f = parse_or_format_error(data)
    # a wrong size or zlib length can never frame valid records: the zlib stream must end
    # (Adler-32 included) exactly at its length and inflate to exactly its size
    assert (f is not None) == valid
    if valid:
        assert f.metadata == Metadata(**expect)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 1 << 16), st.sampled_from(list(C.METADATA_KINDS)))
def test_zlib_bomb_in_metadata_is_refused(extra, kind):
    """A record inflating beyond its declared size stops at the bound."""
    size = 4096
    bomb = zlib.compress(b"MM\x00*" + b"\x00" * (size + extra), 9)
    section = bytes([kind]) + encode_varint(size) + encode_varint(len(bomb)) + bomb
    with pytest.raises(FormatError, match="does not inflate to exactly"):
        parse(file_with_metadata_section(section))
