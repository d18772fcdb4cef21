"""Coverage-guided fuzzing of hostile AV1 payloads behind valid .cgdm framing (atheris).

``fuzz_container.py`` mutates whole files, so the CRC stops almost everything before the
AV1 parser, the AVIF wrapper rebuild and libavif/dav1d. This harness mutates only the AV1
stream and re-serialises the container around it (valid CRC, header size following the
payload's sequence header), then decodes ``--base-only`` in-process. The contract is
``av1_payload.check``: an image of the header's size and mode, or ``FormatError`` /
``ImageError`` with a one-line message the CLI maps to exit code 1. Anything else -- another
exception, an assertion, a crash inside libavif/dav1d, a hang, memory beyond -rss_limit_mb --
is a finding.

    pip install atheris
    python fuzz/fuzz_av1_payload.py -runs=150000 -rss_limit_mb=1024 -timeout=5 /tmp/fuzz-av1

A fuzz input is one options byte (the header's colour mode) and the payload. Half of the
mutations are OBU-aware (libFuzzer's mutator applied to the body of one OBU, or an OBU
dropped, duplicated or retyped, with every size field recomputed), because byte edits
mostly break the OBU framing and stop at "OBU runs past the end of the payload".
CORPUS_DIR (an empty folder outside the repository) is seeded with real payloads on start.
libFuzzer prints ``Done N runs in T second(s)`` at the end.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["cgdm_codec"]):
    import cgdm_codec.base.av1  # noqa: F401  (the lazy imports, instrumented too)
    import cgdm_codec.base.av1_bitstream  # noqa: F401
    import cgdm_codec.base.avif_file  # noqa: F401
    import cgdm_codec.container  # noqa: F401
    import cgdm_codec.imageio  # noqa: F401
    import cgdm_codec.pipeline  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))
import av1_payload  # noqa: E402

from cgdm_codec.cli import describe_error  # noqa: E402


def test_one_input(data: bytes) -> None:
    try:
        av1_payload.check(data)
    except av1_payload.CLEAN_ERRORS as e:  # check() returns these; a leak past it is a finding
        raise AssertionError(f"unexpected {type(e).__name__}: {e}") from None
    except Exception as e:
        # Report with the CLI's mapping, so the finding says what a user would have seen.
        raise AssertionError(f"not a clean error: {type(e).__name__}: {e} (CLI: {describe_error(e)})") from e


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's byte mutator, or (half the time) the same inside one OBU with sizes repaired."""
    rng = random.Random(seed)
    if not data:
        return atheris.Mutate(data, max_size)
    options, payload = data[:1], data[1:]
    r = rng.random()
    if r < 0.05:
        options = bytes((rng.randrange(256),))
    elif r < 0.55:
        payload = av1_payload.mutate_obu(
            payload, lambda body: atheris.Mutate(body, max(len(body) + 64, 1)), rng)
    else:
        return atheris.Mutate(data, max_size)
    return (options + payload)[:max_size]


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus:
        d = Path(corpus[0])
        d.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(av1_payload.seed_inputs()):
            (d / f"seed-{i}.bin").write_bytes(s)
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
