"""Pipes, batches and target sizes through the command line (AV1 base, no diffusion stage)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from cgdm_codec import batch
from cgdm_codec.cli import main
from cgdm_codec.container import parse
from cgdm_codec.target import largest_fitting, largest_fitting_near, settings_for
from conftest import textured

AV1 = ["--base", "av1", "-Q", "--effort", "fast"]


def cli(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def png_bytes(h: int = 40, w: int = 56, seed: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(textured(h, w, seed=seed)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def images(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(png_bytes(32 + 8 * i, 48, seed=i))
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------- pipes


def test_encode_from_stdin_to_stdout_matches_a_file_encode(tmp_path, images):
    res = cli("encode", "-", *AV1, input=images[0].read_bytes())
    assert res.exit_code == 0, res.stderr
    assert cli("encode", str(images[0]), "-o", str(tmp_path / "f.cgdm"), *AV1).exit_code == 0
    assert res.stdout_bytes == (tmp_path / "f.cgdm").read_bytes()
    parse(res.stdout_bytes)


def test_decode_from_stdin_to_stdout_in_the_asked_format(tmp_path, images):
    cg = tmp_path / "a.cgdm"
    assert cli("encode", str(images[1]), "-o", str(cg), *AV1).exit_code == 0
    for fmt, magic in (("png", b"\x89PNG"), ("webp", b"RIFF"), ("jpg", b"\xff\xd8")):
        res = cli("decode", "-", "-o", "-", "--format", fmt, "-Q", input=cg.read_bytes())
        assert res.exit_code == 0, res.stderr
        assert res.stdout_bytes.startswith(magic)
        assert Image.open(io.BytesIO(res.stdout_bytes)).size == (48, 40)


def test_bad_stdin_writes_nothing_to_stdout():
    res = cli("decode", "-", "-Q", input=b"CGD\x01 not really")
    assert res.exit_code == 1 and res.stdout_bytes == b""
    assert res.stderr.startswith("cgdm: error:") and len(res.stderr.strip().splitlines()) == 1
    res = cli("encode", "-", *AV1, input=b"not an image")
    assert res.exit_code == 1 and res.stdout_bytes == b"" and "standard input" in res.stderr


def test_pipe_through_real_processes(tmp_path, images):
    """Real file descriptors: cat img | cgdm encode - | cgdm decode - -o - (PNG)."""
    run = [sys.executable, "-m", "cgdm_codec.cli"]
    enc = subprocess.run(run + ["encode", "-", *AV1], input=images[2].read_bytes(), capture_output=True)
    assert enc.returncode == 0, enc.stderr
    dec = subprocess.run(run + ["decode", "-", "-Q"], input=enc.stdout, capture_output=True)
    assert dec.returncode == 0, dec.stderr
    assert Image.open(io.BytesIO(dec.stdout)).size == (48, 48)


def test_stdin_must_be_the_only_input(images):
    res = cli("encode", "-", str(images[0]), *AV1)
    assert res.exit_code == 2 and "only input" in res.stderr


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_encode_and_decode_into_folders(tmp_path, images, jobs):
    out = tmp_path / f"coded{jobs}"
    res = cli("encode", *map(str, images), "-o", f"{out}/", "-j", jobs, *AV1)
    assert res.exit_code == 0, res.stderr
    coded = sorted(out.iterdir())
    assert [p.name for p in coded] == ["img0.cgdm", "img1.cgdm", "img2.cgdm"]
    for src, cg in zip(images, coded):  # the same bytes as one encode per process
        single = tmp_path / "single.cgdm"
        assert cli("encode", str(src), "-o", str(single), "-f", *AV1).exit_code == 0
        assert cg.read_bytes() == single.read_bytes()
    dec = tmp_path / f"dec{jobs}"
    res = cli("decode", *map(str, coded), "-o", f"{dec}/", "--format", "webp", "-j", jobs)
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in dec.iterdir()) == ["img0.webp", "img1.webp", "img2.webp"]
    assert f"decoded 3 of 3 files" in res.stderr


def test_batch_goes_on_after_a_failure_and_exits_non_zero(tmp_path, images):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    res = cli("encode", str(images[0]), str(bad), str(images[1]), "-o", f"{out}/", "-j", "1", *AV1)
    assert res.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["img0.cgdm", "img1.cgdm"]  # no partial file
    errors = [line for line in res.stderr.splitlines() if line.startswith("cgdm: error:")]
    assert len(errors) == 1 and "bad.png" in errors[0]
    assert "2 of 3 files" in res.stderr and "1 failed" in res.stderr


def test_batch_respects_existing_outputs(tmp_path, images):
    out = tmp_path / "out"
    assert cli("encode", *map(str, images[:2]), "-o", f"{out}/", *AV1).exit_code == 0
    before = (out / "img0.cgdm").read_bytes()
    res = cli("encode", *map(str, images[:2]), "-o", f"{out}/", *AV1)
    assert res.exit_code == 1 and res.stderr.count("already exists") == 2
    assert (out / "img0.cgdm").read_bytes() == before
    assert cli("encode", *map(str, images[:2]), "-o", f"{out}/", "-f", *AV1).exit_code == 0


def test_two_inputs_with_one_output_name_are_refused(tmp_path, images):
    (tmp_path / "b").mkdir()
    other = tmp_path / "b" / "img0.png"
    other.write_bytes(images[0].read_bytes())
    res = cli("encode", str(images[0]), str(other), "-o", f"{tmp_path}/out/", *AV1)
    assert res.exit_code == 2 and "both be written" in res.stderr


def test_default_jobs_follow_cores_and_tasks():
    assert batch.default_jobs(1) == 1
    assert 1 <= batch.default_jobs(100) <= batch.available_cores()
    assert batch.threads_per_job(batch.available_cores()) == 1


# -------------------------------------------------------------------------- target size


def test_largest_fitting_never_exceeds_and_finds_the_best():
    sizes = [10, 20, 20, 35, 34, 50, 80]  # not strictly monotone
    calls: list[int] = []

    def size_at(i: int) -> int:
        calls.append(i)
        return sizes[i]

    for budget in (10, 19, 20, 34, 35, 49, 79, 80, 1000):
        calls.clear()
        i = largest_fitting(len(sizes), size_at, budget)
        assert i is not None and sizes[i] <= budget
        assert sizes[i] == max(sizes[j] for j in set(calls) if sizes[j] <= budget)
        assert len(calls) <= 4
    assert largest_fitting(len(sizes), lambda i: sizes[i], 9) is None


def test_the_search_from_a_guess_never_exceeds_and_is_short_near_the_answer():
    sizes = [10, 20, 20, 35, 34, 50, 80, 81, 90, 95, 99, 120]  # not strictly monotone
    for budget in (9, 10, 19, 20, 34, 35, 49, 79, 80, 100, 1000):
        fits = [i for i, v in enumerate(sizes) if v <= budget]
        for guess in range(len(sizes)):
            calls: list[int] = []
            i = largest_fitting_near(guess, len(sizes), lambda k: calls.append(k) or sizes[k], budget)
            if not fits:
                assert i is None
                continue
            assert i is not None and sizes[i] <= budget
            assert sizes[i] == max(sizes[j] for j in set(calls) if sizes[j] <= budget)
            if guess == max(fits):
                assert len(set(calls)) <= 2
            if abs(guess - max(fits)) <= 1:
                assert len(set(calls)) <= 4
            assert len(set(calls)) <= 2 * len(sizes).bit_length() + 2


def test_settings_span_the_fine_scale_or_the_levels():
    assert [s.level for s in settings_for(None, None)] == [1, 2, 3, 4, 5, 6]
    fine = settings_for((0, 100), lambda q: 1 + q // 20)
    assert len(fine) == 101 and fine[0].fine == 0 and fine[-1].fine == 100


@pytest.mark.parametrize("target", ["400", "900"])
def test_encode_to_size_lands_under_the_target(tmp_path, target):
    src = tmp_path / "big.png"
    src.write_bytes(png_bytes(96, 128, seed=5))
    out = tmp_path / "t.cgdm"
    res = CliRunner().invoke(main, ["encode", str(src), "--size", target, "-o", str(out), "--base", "av1",
                                    "--effort", "fast"])
    assert res.exit_code == 0, res.stderr
    size = out.stat().st_size
    assert size <= int(target)
    assert "chose av1 quality" in res.stderr
    chosen = int(res.stderr.split("chose av1 quality ")[1].split()[0])
    if chosen < 100:  # one AV1 quality more would not have fitted
        above = tmp_path / "above.cgdm"
        assert cli("encode", str(src), "--av1-quality", str(chosen + 1), "-o", str(above), *AV1).exit_code == 0
        assert above.stat().st_size > int(target) or above.stat().st_size == size


def test_a_slow_effort_guesses_at_the_probe_speed_and_settles_at_its_own(tmp_path, monkeypatch):
    """At the default effort (AV1 speed 3) the bisection runs at speed 8; the answer is still
    the default effort's: under the target, and one AV1 quality more would not fit."""
    import cgdm_codec.base.av1 as av1

    speeds: list[int] = []
    encode = av1.encode_avif
    monkeypatch.setattr(av1, "encode_avif", lambda rgb, q, speed, *a, **k: speeds.append(speed) or
                        encode(rgb, q, speed, *a, **k))
    src = tmp_path / "big.png"
    src.write_bytes(png_bytes(96, 128, seed=5))
    out = tmp_path / "t.cgdm"
    res = CliRunner().invoke(main, ["encode", str(src), "--size", "700", "-o", str(out), "--base", "av1",
                                    "--base-only"])
    assert res.exit_code == 0, res.stderr
    assert out.stat().st_size <= 700 and speeds.count(8) >= 5 and 1 <= speeds.count(3) <= 2 * 7 + 2
    chosen = int(res.stderr.split("chose av1 quality ")[1].split()[0])
    if chosen < 100:
        above = tmp_path / "above.cgdm"
        res = cli("encode", str(src), "--av1-quality", str(chosen + 1), "-o", str(above), "--base", "av1",
                  "--base-only", "-Q")
        assert res.exit_code == 0 and above.stat().st_size > 700


def test_bpp_target_and_unreachable_target(tmp_path, images):
    out = tmp_path / "b.cgdm"
    res = cli("encode", str(images[2]), "--bpp", "2.0", "-o", str(out), *AV1)
    assert res.exit_code == 0 and out.stat().st_size <= 2.0 * 48 * 48 / 8
    res = cli("encode", str(images[2]), "--size", "20", "-o", str(tmp_path / "c.cgdm"), *AV1)
    assert res.exit_code == 1 and "cannot reach 20 bytes" in res.stderr
    assert not (tmp_path / "c.cgdm").exists()


def test_quality_choices_are_exclusive(images):
    res = cli("encode", str(images[0]), "-q", "3", "--size", "1000", *AV1)
    assert res.exit_code == 2 and "give one" in res.stderr


def test_several_inputs_without_output_go_beside_each_input(images):
    res = cli("encode", *map(str, images[:2]), *AV1)
    assert res.exit_code == 0, res.stderr
    assert all(p.with_suffix(".cgdm").is_file() for p in images[:2])
    res = cli("decode", *(str(p.with_suffix(".cgdm")) for p in images[:2]), "-Q")
    assert res.exit_code == 0, res.stderr
    assert all(p.with_suffix(".decoded.png").is_file() for p in images[:2])
