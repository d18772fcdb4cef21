"""What a user of gzip, cwebp or avifenc expects of ``cgdm``, as real processes: no silent
failure (a closed pipe), one rule for ``-o``, environment variables checked like options,
a missing extra named in one line, no option silently ignored, ``cgdm info`` like
``gzip -l``. Encodes use the AV1 base without the diffusion stage (no torch): quick.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import textured
from test_cli_process import AV1, CGDM, ENV, encode_card


def run(args: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(CGDM + args, capture_output=True, env=env or ENV, timeout=120, **kwargs)


def one_line(res: subprocess.CompletedProcess, code: int) -> str:
    """The run ended with ``code`` and said why in exactly one line, without a traceback."""
    text = res.stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert res.returncode == code, (res.returncode, text)
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A 256x256 image and its base-only AV1 file (a 197 kB PNG at level 0: more than a pipe holds)."""
    d = tmp_path_factory.mktemp("expect")
    src, coded = encode_card(d, "k", 256, 256)
    return {"png": src, "cgdm": coded, "dir": d}


# ------------------------------------------------------------------ 1. a closed pipe

@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_reader_leaving_mid_output_is_status_141_not_success(files, unbuffered):
    """``cgdm decode k.cgdm -o - --png-level 0 | head -c 10``: the reader takes 10 bytes and
    leaves while cgdm is still writing. Under PYTHONUNBUFFERED the write returned a short
    count that was ignored: exit 0 and "wrote standard output" for a lost image."""
    env = dict(ENV, PYTHONUNBUFFERED=unbuffered)
    p = subprocess.Popen(CGDM + ["decode", str(files["cgdm"]), "-o", "-", "--png-level", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout is not None and p.stderr is not None
    assert len(p.stdout.read(10)) == 10
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141, err
    assert "wrote" not in err and "error" not in err and "Traceback" not in err, err


def test_write_all_finishes_short_writes():
    from cgdm_codec.atomic import write_all

    class Trickle:
        """A raw stream that takes at most 3 bytes a call."""

        def __init__(self) -> None:
            self.data = b""

        def write(self, b) -> int:
            self.data += bytes(b[:3])
            return min(3, len(b))

    t = Trickle()
    write_all(t, b"0123456789")
    assert t.data == b"0123456789"


# ----------------------------------------------------------- 2. several inputs, one -o

@pytest.mark.parametrize("command", ["encode", "decode"])
def test_several_inputs_and_a_file_name_are_a_usage_error(files, tmp_path, command):
    """gzip and cwebp refuse several inputs for one output file; cgdm created a folder
    named like the file (``-o two.cgdm/``, ``-o single.png/``)."""
    src = files["png"] if command == "encode" else files["cgdm"]
    other = tmp_path / ("b" + src.suffix)
    other.write_bytes(src.read_bytes())
    out = tmp_path / ("two.cgdm" if command == "encode" else "single.png")
    extra = AV1 if command == "encode" else []
    line = one_line(run([command, str(src), str(other), "-o", str(out), *extra]), 2)
    assert line.startswith("cgdm: error:") and "2 inputs" in line and f"-o {out}/" in line
    assert not out.exists()
    res = run([command, str(src), str(other), "-o", "/dev/null", *extra])
    assert "takes one input" in one_line(res, 2)
    # a trailing / or an existing folder is a folder, for any number of inputs
    assert run([command, str(src), str(other), "-o", f"{tmp_path}/new/", "-Q", *extra]).returncode == 0
    assert len(list((tmp_path / "new").iterdir())) == 2
    (tmp_path / "there").mkdir()
    assert run([command, str(src), str(other), "-o", str(tmp_path / "there"), "-Q", *extra]).returncode == 0
    assert len(list((tmp_path / "there").iterdir())) == 2


def test_a_file_given_as_a_folder_is_named_as_such(files, tmp_path):
    """``-o existing_file/`` said "cannot create the folder (File exists)"."""
    (tmp_path / "plain").write_bytes(b"x")
    line = one_line(run(["decode", str(files["cgdm"]), "-o", f"{tmp_path}/plain/"]), 2)
    assert line.endswith(f"{tmp_path}/plain is a file, not a folder"), line


# ------------------------------------------------------- 3. environment variables

@pytest.mark.parametrize("var, value, said", [
    ("CGDM_BASE", "bogus", "CGDM_BASE='bogus' is not one of av1, hyperprior (as --base)"),
    ("CGDM_RUNTIME", "bogus", "CGDM_RUNTIME='bogus' is not one of auto, onnx, torch (as --runtime)"),
    ("CGDM_MAX_PIXELS", "abc", "CGDM_MAX_PIXELS='abc' is not an integer"),
    ("CGDM_MAX_SIDE", "0", "max side must be an integer in 1..32768"),
    ("CGDM_DIFFUSION_WEIGHTS", "/no/such.safetensors", "no such weights file"),
    ("CGDM_BASE_WEIGHTS", "/no/such.safetensors", "no such weights file"),
])
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_a_bad_environment_variable_is_a_one_line_usage_error(files, tmp_path, var, value, said, command):
    """``CGDM_BASE=bogus cgdm encode`` printed a traceback where ``--base bogus`` is a usage
    error; a weights path that does not exist was silently ignored."""
    src = files["png"] if command == "encode" else files["cgdm"]
    res = run([command, str(src), "-o", str(tmp_path / ("x.cgdm" if command == "encode" else "x.png"))],
              env=dict(ENV, **{var: value}))
    assert said in one_line(res, 2)
    assert list(tmp_path.iterdir()) == []


def test_the_api_checks_the_environment_too(monkeypatch):
    import cgdm_codec
    from cgdm_codec.errors import ConfigError

    monkeypatch.setenv("CGDM_BASE", "bogus")
    with pytest.raises(ConfigError, match="CGDM_BASE='bogus'"):
        cgdm_codec.encode(Image.new("RGB", (16, 16)))


# ------------------------------------------------------------ 8. limits after the command

@pytest.mark.parametrize("where", ["before", "after"])
def test_size_limits_work_after_the_command_name(files, tmp_path, where):
    limit = ["--max-side", "100"]
    args = ["decode", str(files["cgdm"]), "-o", str(tmp_path / "x.png"), "-Q"]
    res = run(limit + args if where == "before" else args + limit)
    assert "the limit is 100 px per side" in one_line(res, 1)
    args = ["encode", str(files["png"]), "-o", str(tmp_path / "x.cgdm"), *AV1, "--max-pixels", "1000", "-Q"]
    assert "1000 pixels" in one_line(run(args), 1)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------- 4, 5. a missing extra

WITHOUT_TORCH = "import sys; sys.modules['torch'] = None  # as on the light install\n"


@pytest.mark.torch
def test_eval_without_torch_names_the_eval_extra_in_one_line(files, tmp_path):
    """The light install's ``cgdm eval`` ended in a traceback (No module named 'torch')."""
    code = WITHOUT_TORCH + "from cgdm_codec.cli import main\nmain()\n"
    res = subprocess.run([sys.executable, "-c", code, "eval", str(files["dir"]), "--out", str(tmp_path / "ev"),
                          "-q", "1", "--limit", "1"], capture_output=True, env=ENV, timeout=120)
    line = one_line(res, 1)
    assert line == "cgdm: error: cgdm eval needs torch, which is not installed: pip install 'cgdm-codec[eval]'"
    assert not (tmp_path / "ev").exists()


def test_missing_dependency_is_importable_and_speaks_python():
    """docs/api.md: the exceptions import from cgdm_codec; the message had CLI flags in it."""
    code = WITHOUT_TORCH + (
        "import cgdm_codec\n"
        "from PIL import Image\n"
        "try:\n"
        "    cgdm_codec.encode(Image.new('RGB', (32, 32), 'gray'), base='av1', effort='max')\n"
        "except cgdm_codec.MissingDependency as e:\n"
        "    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-800:]
    said = res.stdout.decode().strip()
    assert "needs torch" in said and "pip install 'cgdm-codec[torch]'" in said, said
    assert "--" not in said, said


# ---------------------------------------------------------- 6. no option silently ignored

@pytest.mark.parametrize("extra, name", [(["--realism", "0.5"], "--realism"), (["--steps", "3"], "--steps")])
def test_base_only_with_a_diffusion_setting_is_a_usage_error(files, tmp_path, extra, name):
    res = run(["decode", str(files["cgdm"]), "-o", str(tmp_path / "x.png"), "--base-only", *extra])
    assert one_line(res, 2) == f"cgdm: error: {name} sets the diffusion stage, which --base-only skips: give one"
    assert list(tmp_path.iterdir()) == []


def test_realism_on_a_base_only_file_says_it_has_no_effect(files, tmp_path):
    res = run(["decode", str(files["cgdm"]), "-o", str(tmp_path / "x.png"), "--realism", "1"])
    assert res.returncode == 0
    notes = [line for line in res.stderr.decode().splitlines() if "note:" in line]
    assert len(notes) == 1 and notes[0].endswith(
        "k.cgdm has no diffusion stage (written --base-only): --realism has no effect"), res.stderr


# ------------------------------------------------------------------------- 7. cgdm info

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_info_reads_standard_input(files):
    res = run(["info", "-"], input=files["cgdm"].read_bytes())
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().startswith("standard input: cgdm format 1\n  image      256x256 RGB")


def test_info_describes_several_files_and_goes_on_after_a_bad_one(files, tmp_path):
    """Like ``gzip -l``: one block per file; a bad one is an error line, the others still told."""
    good = [files["cgdm"], GOLDEN / "av1-cgdm4-q3.cgdm"]
    res = run(["info", str(good[0]), str(tmp_path / "missing.cgdm"), str(good[1])])
    assert res.returncode == 1
    assert one_line(res, 1) == f"cgdm: error: {tmp_path / 'missing.cgdm'}: No such file or directory"
    blocks = res.stdout.decode().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"{good[0]}: cgdm format 1", f"{good[1]}: cgdm format 1"]
    res = run(["info", "--json", *map(str, good)])
    import json

    listed = json.loads(res.stdout)
    assert res.returncode == 0 and [d["width"] for d in listed] == [256, 400]


def test_info_applies_no_size_limit(files):
    """``CGDM_MAX_SIDE=100 cgdm info`` refused a file it never decodes."""
    res = run(["info", str(files["cgdm"])], env=dict(ENV, CGDM_MAX_SIDE="100"))
    assert res.returncode == 0 and b"256x256" in res.stdout


@pytest.mark.parametrize("name, weights, realism", [
    ("av1-cgdm6-q3.cgdm", "cgdm-av1-6", True), ("av1-cgdm4-q3.cgdm", "cgdm-av1-4", True),
    ("av1-cgdm-q3.cgdm", "cgdm-av1", False), ("av1-q3.cgdm", "none", False), ("hyperprior-q3.cgdm", "cgdm-small", False)])
def test_info_json_names_the_base_codec_and_the_weights(name, weights, realism):
    """``"base_codec": 2`` where the text says av1, and the weights only by a hash; whether a
    realism network and a fast (distilled) network are installed for them."""
    import json

    res = run(["info", "--json", str(GOLDEN / name)])
    s = json.loads(res.stdout)
    assert s["base_codec"] == ("hyperprior" if name.startswith("hyperprior") else "av1")
    assert s["base_codec_id"] == (1 if name.startswith("hyperprior") else 2)
    assert (s["weights"], s["realism"]) == (weights, realism)
    text = run(["info", str(GOLDEN / name)]).stdout.decode()
    assert f"weights {weights}" in text
    if weights != "none":
        assert f"realism network: {'yes' if realism else 'no'}" in text
    assert s["fast"] == (weights == "cgdm-av1-6") == ("fast network: yes" in text)


# -------------------------------------------------------------------- 10. error wording

def test_a_folder_as_input_is_one_line(tmp_path):
    (tmp_path / "somedir").mkdir()
    for command in ("encode", "decode", "info"):
        line = one_line(run([command, f"{tmp_path}/somedir/"]), 2)
        assert line == f"cgdm: error: {tmp_path}/somedir: is a folder, not a file (give the files in it, e.g. {tmp_path}/somedir/*)"


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_a_truncated_file_says_truncated(files, tmp_path, keep):
    data = files["cgdm"].read_bytes()
    cut = tmp_path / "cut.cgdm"
    cut.write_bytes(data[: int(len(data) * keep)])
    for args in (["info", str(cut)], ["decode", str(cut), "-o", str(tmp_path / "x.png"), "-Q"]):
        assert one_line(run(args), 1).startswith(f"cgdm: error: {cut}: truncated file")
    cut.write_bytes(data + b"appended")
    assert "corrupted file or trailing bytes" in one_line(run(["info", str(cut)]), 1)


def test_decode_to_a_name_without_extension_is_a_usage_error(files, tmp_path):
    """``decode -o noext`` exited 1; a name that says no format is a usage error."""
    line = one_line(run(["decode", str(files["cgdm"]), "-o", str(tmp_path / "noext")]), 2)
    assert "unknown output format" in line and "--format" in line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- 11, 12. documents

ROOT = Path(__file__).resolve().parents[2]


def test_readme_says_which_runtime_gives_the_decode_bit_for_bit():
    readme = (ROOT / "README.md").read_text()
    assert "bit for bit on every run with the default runtime, ONNX Runtime" in readme


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("path", ["light/bin/cgdm", "build/lib/x.py", "cgdm_codec.egg-info/PKG-INFO"])
def test_the_readmes_install_folders_are_ignored_by_git(path):
    """README's light install (``light/``) and ``pip install .``'s leftovers stay out of git."""
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


# ------------------------------------------------------------- 9. Ctrl-C inside libaom

def test_ctrl_c_inside_a_long_av1_encode_takes_effect_at_once(tmp_path):
    """libaom codes a picture in one C call (18 s for 24 MP), during which Python runs no
    signal handler: Ctrl-C waited for it. The work now runs in a worker thread."""
    import signal
    import time

    import numpy as np

    src = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "noise.cgdm"
    p = subprocess.Popen(CGDM + ["encode", str(src), "-o", str(out), "--base", "av1", "--base-only"],
                         stderr=subprocess.PIPE, env=ENV,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stderr is not None
    while b"base codec (av1)" not in p.stderr.readline():
        pass
    time.sleep(0.5)  # inside libaom now (the encode takes seconds)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    took = time.monotonic() - sent
    assert p.returncode == 130 and err.strip().splitlines() == ["cgdm: error: interrupted"], err
    assert took < 2.0, took
    assert sorted(q.name for q in tmp_path.iterdir()) == ["noise.png"]  # no output, no temporary file


# ------------------------------------------- 12. save_all, and notes of losses on -Q

def animation(path: Path) -> Path:
    frames = [Image.fromarray(textured(48, 64, seed=i)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def test_pillow_save_all_saves_the_first_frame_with_a_warning(tmp_path):
    import cgdm_codec.pillow  # noqa: F401

    with Image.open(animation(tmp_path / "a.gif")) as im:
        im.seek(2)
        with pytest.warns(UserWarning, match="only the first of 3 frames is saved"):
            im.save(tmp_path / "a.cgdm", save_all=True, base="av1", base_only=True)
        assert im.tell() == 2  # the caller's frame is left as it was
        im.seek(0)
        first = im.convert("RGB")
    with Image.open(tmp_path / "a.cgdm") as coded:
        assert coded.size == first.size
    single = Image.fromarray(textured(48, 64))
    with pytest.warns(UserWarning, match="first of 2 frames"):
        single.save(tmp_path / "b.cgdm", save_all=True, append_images=[single], base="av1", base_only=True)


@pytest.mark.parametrize("quiet, shown", [("-Q", True), ("-QQ", False)])
def test_quiet_keeps_the_notes_of_what_is_lost(tmp_path, quiet, shown):
    """-Q hid "only the first frame is coded" and "alpha dropped": silent data loss."""
    res = run(["encode", str(animation(tmp_path / "a.gif")), "-o", str(tmp_path / "a.cgdm"), quiet, *AV1])
    assert res.returncode == 0
    want = "cgdm: note: 3 frames (an animation or a multi-page file): only the first is coded\n"
    assert res.stderr.decode() == (want if shown else "")
    rgba = tmp_path / "t.png"
    Image.new("RGBA", (32, 16), (200, 10, 10, 90)).save(rgba)
    assert run(["encode", str(rgba), "-o", str(tmp_path / "t.cgdm"), quiet, *AV1]).stderr == b""  # alpha kept
    res = run(["decode", str(tmp_path / "t.cgdm"), "-o", str(tmp_path / "t.jpg"), quiet])
    assert res.returncode == 0
    assert res.stderr.decode() == ("cgdm: note: JPEG cannot store alpha: alpha dropped in t.jpg\n" if shown else "")


def test_a_batch_shows_each_files_notes(tmp_path):
    """A batch's workers printed nothing of what their files lost, -Q or not."""
    src = animation(tmp_path / "a.gif")
    other = tmp_path / "b.png"
    Image.fromarray(textured(48, 64)).save(other)
    res = run(["encode", str(src), str(other), "-o", f"{tmp_path}/out/", "-Q", "-j", "1", *AV1])
    assert res.returncode == 0
    assert res.stderr.decode() == (f"cgdm: note: {src}: 3 frames (an animation or a multi-page file): "
                                   "only the first is coded\n")
