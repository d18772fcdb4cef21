"""Hostile AV1 payloads behind valid .cgdm framing (the deterministic half of fuzz/fuzz_av1_payload.py).

Only the AV1 stream is mutated; the container around it is re-serialised with a valid CRC,
so every input reaches the AV1 parser, the AVIF wrapper rebuild and libavif/dav1d. Each
``--base-only`` decode must give an image of the header's size and mode or raise the codec's
own one-line errors; through the CLI: one ``cgdm: error:`` line, exit code 1, no output file.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from cgdm_codec.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
import av1_payload  # noqa: E402

N_MUTATIONS = 400


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return av1_payload.seed_payloads()


@pytest.fixture(scope="module")
def outcomes(payloads) -> list[tuple[bytes, av1_payload.Outcome]]:
    inputs = av1_payload.mutations(payloads, N_MUTATIONS, seed=24)
    return [(data, av1_payload.check(data)) for data in inputs]


def test_seed_payloads_decode_under_every_colour_mode():
    for data in av1_payload.seed_inputs():
        assert av1_payload.check(data).error is None


def test_mutated_payloads_decode_or_fail_cleanly(outcomes):
    """``check`` raises on anything but an image or a one-line FormatError/ImageError."""
    assert len(outcomes) == N_MUTATIONS
    ok = sum(o.error is None for _, o in outcomes)
    errors = Counter(o.error.split(" (")[1] if " (" in o.error else o.error
                     for _, o in outcomes if o.error is not None)
    # The mutations must reach past the OBU framing: some decode, some are refused by
    # the header checks, some only by libavif/dav1d.
    assert ok >= N_MUTATIONS // 20, errors
    assert any(k.startswith("the AV1 payload does not decode") for k in errors), errors
    assert any(k.startswith("the sequence header is not followed") for k in errors), errors


def test_mutations_are_deterministic(payloads):
    assert av1_payload.mutations(payloads, 20, seed=3) == av1_payload.mutations(payloads, 20, seed=3)


def test_obu_aware_edit_keeps_the_framing(payloads):
    rng = random.Random(5)
    for p in payloads:
        edited = av1_payload.mutate_obu(p, lambda body: body + b"\x00" * rng.randrange(1, 200), rng)
        assert av1_payload.split_loose(edited) is not None


def test_cli_gives_one_line_and_exit_1(outcomes, tmp_path):
    refused = [data for data, o in outcomes if o.error is not None]
    # a spread of refusals: the OBU splitter, the header checks and libavif/dav1d
    picked, seen = [], set()
    for data in refused:
        kind = av1_payload.check(data).error[:60]
        if kind not in seen:
            seen.add(kind)
            picked.append(data)
        if len(picked) == 6:
            break
    assert len(picked) == 6
    for i, data in enumerate(picked):
        src, out = tmp_path / f"bad{i}.cgdm", tmp_path / f"bad{i}.png"
        src.write_bytes(av1_payload.wrap(data[0], data[1:]))
        res = CliRunner().invoke(main, ["decode", str(src), "-o", str(out), "--base-only", "-Q"])
        err = res.stderr.strip()
        assert res.exit_code == 1, (res.exit_code, res.output)
        assert err.startswith("cgdm: error:") and len(err.splitlines()) == 1, err
        assert "Traceback" not in res.output and not out.exists()
        assert list(tmp_path.glob(".cgdm-*")) == []


def test_cli_decodes_a_mutated_payload_that_is_still_valid(outcomes, tmp_path):
    data = next(d for d, o in outcomes if o.error is None)
    src, out = tmp_path / "ok.cgdm", tmp_path / "ok.png"
    src.write_bytes(av1_payload.wrap(data[0], data[1:]))
    res = CliRunner().invoke(main, ["decode", str(src), "-o", str(out), "--base-only", "-Q"])
    assert res.exit_code == 0, res.output
    assert out.is_file()
