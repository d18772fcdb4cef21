"""Coverage-guided fuzzing of the .cgdm parser with atheris (optional; CI does not need it).

Every input (as given, and with its checksum recomputed) must either parse or raise ``FormatError``; a parsed file's alpha section must
inflate to exactly width x height bytes or raise ``ImageError``. Anything else (another
exception type, a hang, memory beyond libFuzzer's -rss_limit_mb) is a finding.

    pip install atheris
    python fuzz/fuzz_container.py -max_total_time=720 -rss_limit_mb=512 -timeout=5 CORPUS_DIR

CORPUS_DIR (any empty folder outside the repository) is seeded with valid files of every
layout on start. libFuzzer prints ``Done N runs in T second(s)`` at the end.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["cgdm_codec"]):
    from cgdm_codec import container
    from cgdm_codec.container import CgdmFile, ColourMode, FormatError, parse, serialize, summary
    from cgdm_codec.errors import ImageError
    from cgdm_codec.imageio import decode_alpha


def seeds() -> list[bytes]:
    """Valid files of each colour mode, with and without the diffusion sections."""
    out = []
    for mode in ColourMode:
        for diffusion in (False, True):
            w, h = (5, 3) if mode != ColourMode.RGB else (300, 200)
            f = CgdmFile(quality=1 + int(mode), width=w, height=h, weights_id=b"\x01\x02\x03\x04",
                         base_streams=(b"zz", b"yyyy"), colour_mode=mode, seed=7 * int(mode),
                         steps=9 if diffusion else None, syntax=b"\x11\x22" if diffusion else None,
                         alpha=zlib.compress(b"\x80" * (w * h)) if mode.has_alpha else None)
            out.append(serialize(f))
    return out


def with_valid_crc(data: bytes) -> bytes:
    """Replace the last 4 bytes by the CRC-32 of the rest.

    Random mutations almost never keep the checksum right, so without this the fuzzer
    would rarely get past it to the code that builds the file object and inflates alpha.
    """
    body = data[:-4] if len(data) >= 4 else data
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_one_input(data: bytes) -> None:
    check(data)
    check(with_valid_crc(data))


def check(data: bytes) -> None:
    try:
        f = parse(data)
    except FormatError:
        return
    # A parsed file must round-trip and describe itself without surprises.
    assert serialize(f) == data, "parse/serialize round trip changed the bytes"
    summary(f, len(data))
    if f.alpha is not None:
        try:
            a = decode_alpha(f.alpha, f.width, f.height)
        except ImageError:
            return
        assert a.shape == (f.height, f.width)


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus:
        d = Path(corpus[0])
        d.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(seeds()):
            (d / f"seed-{i}.cgdm").write_bytes(s)
    assert container.MAX_PIXELS > 0
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
