"""The command line: exit codes, one-line errors, no half-written outputs, fast `info`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cgdm_codec.cli import main, progress_line
from conftest import textured


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


def test_progress_on_stderr_and_quiet(encoded):
    d, src, _ = encoded
    res = CliRunner().invoke(main, ["encode", str(src), "-o", str(d / "p.cgdm"),
                                    "--finetune-iters", "2", "--seeds", "2"])
    assert res.exit_code == 0 and "wrote" in res.stderr
    assert "fine-tuning the syntax encoder [" in res.stderr and "2/2 done in" in res.stderr
    assert "scoring candidate decodes" in res.stderr and "chose the" in res.stderr
    res = CliRunner().invoke(main, ["encode", str(src), "-o", str(d / "p.cgdm"), "--quiet", "--force",
                                    "--no-finetune", "--seeds", "2"])
    assert res.exit_code == 0 and res.stderr == ""
    res = CliRunner().invoke(main, ["decode", str(d / "p.cgdm"), "-o", str(d / "p.png")])
    assert res.exit_code == 0 and "diffusion steps [" in res.stderr and "5/5 done in" in res.stderr  # the newest decoder: 5 steps


def test_progress_line_and_eta():
    assert progress_line("x", 1, 4, 3.0, 10.0, 8) == "[ 10.0s] x [##......] 1/4 ETA 9s"
    assert progress_line("x", 4, 4, 12.5, 20.0, 8) == "[ 20.0s] x [########] 4/4 done in 12.5s"


@pytest.mark.parametrize("args", [["--effort", "huge"], ["--seeds", "0"], ["--finetune-iters", "-1"]])
def test_bad_effort_options_are_usage_errors(encoded, args):
    res = CliRunner().invoke(main, ["encode", str(encoded[1]), "-o", "never.cgdm", *args])
    assert res.exit_code == 2 and not Path("never.cgdm").exists()


def _err(res) -> str:
    return res.stderr.strip()


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
    assert res.exit_code == 1 and "unknown output format" in _err(res)
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
