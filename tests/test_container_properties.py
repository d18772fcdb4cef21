"""Property tests (hypothesis) for the .cgdm parser: any bytes end in FormatError or a file.

tests/test_container.py flips every bit of fixed examples; these generate the files and
the damage. The coverage-guided run (atheris) lives in fuzz/fuzz_container.py.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgdm_codec import container as C
from cgdm_codec.container import CgdmFile, ColourMode, FormatError, Limits, parse, serialize, summary
from cgdm_codec.errors import ImageError
from cgdm_codec.imageio import decode_alpha

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
