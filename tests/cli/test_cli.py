"""The command line: exit codes, one-line errors, no half-written outputs, fast `info`."""

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cgdm_codec.cli import Reporter, main, progress_line
from conftest import textured


PROGRESS = re.compile(r"\[ *\d+\.\ds\] ")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    src = d / "card.png"
    Image.fromarray(textured(48, 80)).save(src)
    res = run("encode", str(src), "-q", "2", "--quiet", "--effort", "fast")
    assert res.exit_code == 0, res.output
    return d, src, d / "card.cgdm"


def test_encode_default_name_and_decode_default_name(encoded):
    d, src, cg = encoded
    assert cg.is_file() and cg.stat().st_size > 20
    res = run("decode", str(cg), "--quiet")
    assert res.exit_code == 0, res.output
    out = d / "card.decoded.png"
    assert Image.open(out).size == (80, 48)
    assert Image.open(src).size == (80, 48)  # the original is never overwritten by default


@pytest.mark.parametrize("ext", [".png", ".webp", ".jpg", ".bmp", ".tiff"])
def test_decode_output_format_follows_extension(encoded, ext):
    d, _, cg = encoded
    out = d / f"o{ext}"
    res = run("decode", str(cg), "-o", str(out), "--quiet", "--base-only")
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (80, 48)


def test_info_json_fields(encoded):
    _, _, cg = encoded
    res = run("info", str(cg), "--json")
    assert res.exit_code == 0
    s = json.loads(res.output)
    for key in ("width", "height", "quality", "bytes", "bpp", "format_version", "seed"):
        assert key in s
    assert (s["width"], s["height"], s["quality"]) == (80, 48, 2)
    assert s["bytes"] == cg.stat().st_size
    assert s["bpp"] == round(8 * cg.stat().st_size / (80 * 48), 4)


def test_info_human_readable(encoded):
    res = run("info", str(encoded[2]))
    assert res.exit_code == 0 and "80x48" in res.output and "quality" in res.output


@pytest.mark.torch
def test_progress_on_stderr_and_quiet(encoded):
    """The learned base's encoder search and 5-step decoder report progress; --quiet is silent."""
    d, src, _ = encoded
    res = CliRunner().invoke(main, ["encode", str(src), "-o", str(d / "p.cgdm"), "--base", "hyperprior",
                                    "--finetune-iters", "2", "--seeds", "2"])
    assert res.exit_code == 0 and "wrote" in res.stderr
    assert "fine-tuning the syntax encoder [" in res.stderr and "2/2 done in" in res.stderr
    assert "scoring candidate decodes" in res.stderr and "chose the" in res.stderr
    res = CliRunner().invoke(main, ["encode", str(src), "-o", str(d / "p.cgdm"), "--quiet", "--force",
                                    "--base", "hyperprior", "--no-finetune", "--seeds", "2"])
    assert res.exit_code == 0 and res.stderr == ""
    res = CliRunner().invoke(main, ["decode", str(d / "p.cgdm"), "-o", str(d / "p.png")])
    # the newest decoder: 5 steps of one tile
    assert res.exit_code == 0 and "diffusion tiles [" in res.stderr and "5/5 done in" in res.stderr


def test_a_silent_stage_off_a_terminal_says_it_still_runs():
    """libaom codes a 24 MP picture in one silent call of ~18 s: a log gets a line that the
    stage still runs (every HEARTBEAT seconds of silence, here shortened), a terminal a clock."""
    stream = io.StringIO()
    report = Reporter(0, stream=stream, tty=False)
    report.HEARTBEAT = 0.3
    report("base codec (av1): analysis and entropy coding")
    time.sleep(1.0)
    report.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2 and "base codec (av1): analysis and entropy coding ... still running (" in lines[1]
    quiet = io.StringIO()
    with Reporter(1, stream=quiet, tty=False) as silent:
        silent.HEARTBEAT = 0.3
        silent("a stage")
        time.sleep(0.6)
    assert quiet.getvalue() == ""


def test_progress_line_and_eta():
    assert progress_line("x", 1, 4, 3.0, 10.0, 8) == "[ 10.0s] x [##......] 1/4 ETA 9s"
    assert progress_line("x", 4, 4, 12.5, 20.0, 8) == "[ 20.0s] x [########] 4/4 done in 12.5s"


@pytest.mark.parametrize("args", [["--effort", "huge"], ["--seeds", "0"], ["--finetune-iters", "-1"]])
def test_bad_effort_options_are_usage_errors(encoded, args):
    res = CliRunner().invoke(main, ["encode", str(encoded[1]), "-o", "never.cgdm", *args])
    assert res.exit_code == 2 and not Path("never.cgdm").exists()


def _err(res) -> str:
    """stderr without the progress lines (``[  0.1s] reading x.png``) that precede an error."""
    return "\n".join(line for line in res.stderr.strip().splitlines() if not PROGRESS.match(line))


def test_missing_input_is_one_line_error(tmp_path):
    res = CliRunner().invoke(main, ["encode", str(tmp_path / "nope.png")])
    assert res.exit_code == 1
    assert _err(res).startswith("cgdm: error:") and len(_err(res).splitlines()) == 1


def test_not_an_image(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"hello, not a png")
    res = CliRunner().invoke(main, ["encode", str(p), "-o", str(tmp_path / "x.cgdm")])
    assert res.exit_code == 1 and "not a readable image" in _err(res)
    assert not (tmp_path / "x.cgdm").exists()


def test_bad_quality_is_usage_error(encoded):
    res = CliRunner().invoke(main, ["encode", str(encoded[1]), "-q", "7"])
    assert res.exit_code == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "append", "empty"])
def test_damaged_files_fail_cleanly(encoded, tmp_path, damage):
    data = bytearray(encoded[2].read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "magic":
        data[0:3] = b"PNG"
    elif damage == "append":
        data += b"\x00"
    else:
        data = bytearray()
    bad = tmp_path / "bad.cgdm"
    bad.write_bytes(bytes(data))
    out = tmp_path / "bad.png"
    for cmd in (["decode", str(bad), "-o", str(out)], ["info", str(bad)]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1, (cmd, res.output)
        assert _err(res).startswith("cgdm: error:") and len(_err(res).splitlines()) == 1
    assert not out.exists()
    assert not any(p.name.startswith(".cgdm-") for p in tmp_path.iterdir())


def test_unknown_output_extension_writes_nothing(encoded, tmp_path):
    res = CliRunner().invoke(main, ["decode", str(encoded[2]), "-o", str(tmp_path / "o.xyz")])
    assert res.exit_code == 2 and "unknown output format" in _err(res)
    assert list(tmp_path.iterdir()) == []


def test_help_and_version():
    for cmd in ([], ["encode"], ["decode"], ["info"]):
        res = run(*cmd, "--help")
        assert res.exit_code == 0 and "Usage" in res.output
    res = run("--version")
    assert res.exit_code == 0 and "cgdm" in res.output


def test_info_does_not_import_torch(encoded):
    """`cgdm info` must answer without loading torch or CompressAI."""
    code = (
        "import sys; from cgdm_codec.cli import main\n"
        "try:\n    main(['info', sys.argv[1], '--json'])\n"
        "except SystemExit:\n    pass\n"
        "bad = [m for m in ('torch', 'compressai', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(encoded[2])], capture_output=True,
                         text=True, check=True).stdout
    assert "HEAVY []" in out


def test_console_script_runs(encoded):
    exe = Path(sys.executable).parent / "cgdm"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    res = subprocess.run([str(exe), "info", str(encoded[2])], capture_output=True, text=True)
    assert res.returncode == 0 and "80x48" in res.stdout


def test_huge_dimensions_are_refused_before_decoding(tmp_path):
    """A tiny PNG claiming 40000x40000 pixels must be refused without allocating them."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    p = tmp_path / "bomb.png"
    p.write_bytes(png)
    res = CliRunner().invoke(main, ["encode", str(p), "-o", str(tmp_path / "b.cgdm")])
    assert res.exit_code == 1 and "32768" in _err(res)
    assert not (tmp_path / "b.cgdm").exists()


def test_diffusion_flag_forces_the_stage_and_contradicts_base_only(tmp_path, monkeypatch):
    """A flat image, where the base-only decode wins the encoder's decision, still gets the
    diffusion stage with --diffusion; --diffusion with --base-only is a usage error."""
    from cgdm_codec.container import parse

    monkeypatch.setenv("CGDM_BASE", "av1")
    src = tmp_path / "flat.png"
    Image.new("RGB", (40, 32), (120, 130, 140)).save(src)
    res = run("encode", str(src), "-q", "6", "--quiet", "--effort", "fast", "-o", str(tmp_path / "auto.cgdm"))
    assert res.exit_code == 0, res.output
    res = run("encode", str(src), "-q", "6", "--quiet", "--effort", "fast", "--diffusion",
              "-o", str(tmp_path / "forced.cgdm"))
    assert res.exit_code == 0, res.output
    assert parse((tmp_path / "forced.cgdm").read_bytes()).diffusion
    assert not parse((tmp_path / "auto.cgdm").read_bytes()).diffusion
    res = run("encode", str(src), "--diffusion", "--base-only", "-o", str(tmp_path / "x.cgdm"))
    assert res.exit_code == 2 and "contradict" in res.output and not (tmp_path / "x.cgdm").exists()


# --------------------------------------------------------------- issue 24: a new user's bugs
# (AV1 base without the diffusion stage: no torch, milliseconds per file)

FAST = ["--base", "av1", "--base-only", "-Q"]


@pytest.fixture()
def small(tmp_path):
    src = tmp_path / "small.png"
    Image.fromarray(textured(24, 40, seed=2)).save(src)
    res = run("encode", str(src), "-o", str(tmp_path / "x.cgdm"), *FAST)
    assert res.exit_code == 0, res.output
    return src, tmp_path / "x.cgdm"


def test_one_input_into_a_folder_that_does_not_exist(small, tmp_path, monkeypatch):
    """``-o newdir/`` once wrote a FILE named newdir (encode) or failed with "unknown output
    format '(none)'" (decode): a trailing / means a folder, created if missing, for one input too."""
    src, cg = small
    monkeypatch.chdir(tmp_path)
    res = run("encode", "small.png", "-o", "newdir/", *FAST)
    assert res.exit_code == 0, res.output
    assert Path("newdir").is_dir() and Path("newdir/small.cgdm").is_file()
    res = run("decode", "x.cgdm", "-o", "nodir3/", "-Q")
    assert res.exit_code == 0, res.output
    assert Image.open("nodir3/x.png").size == (40, 24)
    res = run("decode", "x.cgdm", "-o", "deep/er/", "--format", "webp", "-Q")
    assert res.exit_code == 0 and Image.open("deep/er/x.webp").format == "WEBP"
    Path("existing").mkdir()  # an existing folder without the slash is a folder too
    assert run("encode", "small.png", "-o", "existing", *FAST).exit_code == 0
    assert Path("existing/small.cgdm").is_file()


def test_a_missing_input_creates_no_folder(tmp_path):
    res = CliRunner().invoke(main, ["encode", str(tmp_path / "nope.png"), "-o", str(tmp_path / "new") + "/"])
    assert res.exit_code == 1 and "No such file or directory" in _err(res)
    assert not (tmp_path / "new").exists()


def test_format_contradicting_the_extension_is_a_usage_error(small, tmp_path):
    _, cg = small
    res = CliRunner().invoke(main, ["decode", str(cg), "-o", str(tmp_path / "o.png"), "--format", "webp"])
    assert res.exit_code == 2 and "--format" in res.stderr and not (tmp_path / "o.png").exists()
    res = run("decode", str(cg), "-o", str(tmp_path / "o.jpeg"), "--format", "jpg", "-Q")  # the same format
    assert res.exit_code == 0 and Image.open(tmp_path / "o.jpeg").format == "JPEG"
    res = CliRunner().invoke(main, ["decode", str(cg), "-o", "-", "--format", "nonsense"])
    assert res.exit_code == 2 and "nonsense" in res.stderr


@pytest.mark.parametrize("fmt", [None, "webp"])
def test_decode_to_dev_null(small, fmt):
    res = CliRunner().invoke(main, ["decode", str(small[1]), "-o", "/dev/null", "-Q",
                                    *(["--format", fmt] if fmt else [])])
    assert res.exit_code == 0, res.output


def test_encode_to_dev_null(small):
    res = CliRunner().invoke(main, ["encode", str(small[0]), "-o", "/dev/null", *FAST])
    assert res.exit_code == 0, res.output
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("name", ["out.jpg", "out.PNG", "out.webp", "out.tiff"])
def test_encode_refuses_an_image_extension(small, tmp_path, name):
    res = CliRunner().invoke(main, ["encode", str(small[0]), "-o", str(tmp_path / name), *FAST])
    assert res.exit_code == 2 and "writes .cgdm files" in res.stderr
    assert not (tmp_path / name).exists()
    for other in ("out.bin", "out"):  # not an image extension: the user's choice
        assert run("encode", str(small[0]), "-o", str(tmp_path / other), *FAST).exit_code == 0


def test_output_quality_for_lossy_outputs(small, tmp_path):
    _, cg = small
    sizes = {}
    for ext in ("jpg", "webp"):
        for q in (5, 95):
            out = tmp_path / f"q{q}.{ext}"
            res = run("decode", str(cg), "-o", str(out), "--output-quality", str(q), "-Q")
            assert res.exit_code == 0, res.output
            sizes[ext, q] = out.stat().st_size
        assert sizes[ext, 5] < sizes[ext, 95]
    res = CliRunner().invoke(main, ["decode", str(cg), "-o", str(tmp_path / "x.png"), "--output-quality", "50"])
    assert res.exit_code == 2 and "JPEG, WebP and AVIF" in res.stderr and not (tmp_path / "x.png").exists()
    res = CliRunner().invoke(main, ["decode", str(cg), "-o", str(tmp_path / "y.jpg"), "--output-quality", "101"])
    assert res.exit_code == 2


def test_gif_output_notes_the_palette(small, tmp_path):
    res = CliRunner().invoke(main, ["decode", str(small[1]), "-o", str(tmp_path / "x.gif")])
    assert res.exit_code == 0 and "256-colour palette" in res.stderr


def test_single_file_errors_name_the_file(small, tmp_path):
    bad = tmp_path / "bad.cgdm"
    data = small[1].read_bytes()
    bad.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    for cmd in (["decode", str(bad), "-o", str(tmp_path / "o.png")], ["info", str(bad)]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1 and _err(res).startswith(f"cgdm: error: {bad}: corrupted file")


def test_a_flipped_header_byte_reads_as_damage_not_as_a_version_problem(small, tmp_path):
    import zlib

    data = bytearray(small[1].read_bytes())
    data[5] = 9  # the base codec id
    bad = tmp_path / "flipped.cgdm"
    bad.write_bytes(bytes(data))
    res = CliRunner().invoke(main, ["decode", str(bad), "-o", str(tmp_path / "o.png")])
    assert res.exit_code == 1
    assert _err(res) == (f"cgdm: error: {bad}: damaged file (checksum mismatch): unknown base codec id 9 "
                         "(this cgdm knows: 1, 2, 3)")
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")  # intact: a newer writer's file
    bad.write_bytes(bytes(data))
    res = CliRunner().invoke(main, ["info", str(bad)])
    assert res.exit_code == 1 and "damaged" not in _err(res) and "unknown base codec id 9" in _err(res)


def test_a_missing_input_has_one_wording_everywhere(tmp_path):
    missing = tmp_path / "missing"
    for cmd in (["encode", f"{missing}.png"], ["decode", f"{missing}.cgdm"], ["info", f"{missing}.cgdm"],
                ["encode", f"{missing}.png", f"{missing}2.png", "-o", str(tmp_path / "out") + "/"]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1
        errors = [line for line in _err(res).splitlines() if line.startswith("cgdm: error:")]
        assert errors and all(e.startswith(f"cgdm: error: {missing}") and
                              e.endswith(": No such file or directory") for e in errors), errors


def test_info_names_the_base_codec(small):
    res = run("info", str(small[1]))
    assert res.exit_code == 0 and "base codec av1," in res.output


def test_info_counts_sampler_steps_in_english():
    golden = Path(__file__).resolve().parents[1] / "golden"
    one = run("info", str(golden / "av1-cgdm4-q3.cgdm"))
    assert one.exit_code == 0 and "diffusion  1 DDIM step, seed" in one.output
    five = run("info", str(golden / "av1-cgdm3-q3.cgdm"))
    assert five.exit_code == 0 and "diffusion  5 DDIM steps, seed" in five.output


def test_terminal_clock_ticks_through_a_silent_stage_and_is_cleared():
    """Some pipeline stages run for a minute without a message (a 12 MP encode's scoring):
    on a terminal the clock line shows the time passing; logs get only the stage lines."""
    import io
    import time

    from cgdm_codec.cli import Reporter

    for tty in (True, False):
        stream = io.StringIO()
        with Reporter(quiet=False, stream=stream, tty=tty, tick=0.2) as report:
            report("base codec (av1): analysis and entropy coding")
            time.sleep(0.7)
            report("wrote x.cgdm")
        text = stream.getvalue()
        ticks = text.count("base codec (av1): analysis and entropy coding ... ")
        assert (ticks > 0) == tty, text
        assert text.endswith("wrote x.cgdm\n") if not tty else "\x1b[K[" in text
    stream = io.StringIO()
    with Reporter(quiet=True, stream=stream, tty=True, tick=0.1) as report:
        report("silent")
        time.sleep(0.3)
    assert stream.getvalue() == ""


def test_after_ctrl_c_the_work_thread_prints_nothing_more():
    """The work runs in a thread that outlives Ctrl-C by a moment: whatever stage it
    announces then must not come after the error line. A normal close (before an error
    line in a batch, or the final message) keeps the reporter usable."""
    stream = io.StringIO()
    report = Reporter(0, stream=stream, tty=False)
    with pytest.raises(KeyboardInterrupt):
        with report:
            report("loading the base codec")
            raise KeyboardInterrupt
    before = stream.getvalue()
    report("decoding")  # the work thread, still running
    report.note("alpha dropped")
    assert stream.getvalue() == before
    ok = io.StringIO()
    batch = Reporter(0, stream=ok, tty=False)
    batch.close()
    batch("next file")
    assert "next file" in ok.getvalue()


def test_closing_while_the_clock_starts_is_safe():
    """close() from the main thread may come while the work thread starts the clock."""
    import threading

    for _ in range(50):
        report = Reporter(0, stream=io.StringIO(), tty=True, tick=0.01)
        starter = threading.Thread(target=report._start_clock)
        starter.start()
        report.close()
        starter.join()
        report.close()
