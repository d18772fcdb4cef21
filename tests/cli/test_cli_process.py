"""The command as a real process: standard output on a full disk or a closed pipe, Ctrl-C,
progress on a terminal, and input files changed by another process while they are read.

These need real file descriptors, signals and terminals, which click's CliRunner fakes.
Encodes use the AV1 base without the diffusion stage (no torch), so each run is quick.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import textured

CGDM = [sys.executable, "-m", "cgdm_codec.cli"]
AV1 = ["--base", "av1", "--base-only", "--effort", "fast"]
ENV = dict(os.environ, CGDM_BASE="av1")


def default_sigint() -> None:
    """Children get Ctrl-C's default handling even when this run was started in the
    background of a non-interactive shell, which passes SIGINT down as ignored (and Python
    keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def encode_card(d: Path, name: str, h: int, w: int) -> tuple[Path, Path]:
    """A test card NAME.png of h x w and its base-only AV1 file NAME.cgdm, coded by the command."""
    src = d / f"{name}.png"
    Image.fromarray(textured(h, w)).save(src)
    subprocess.run(CGDM + ["encode", str(src), "-o", str(d / f"{name}.cgdm"), "-Q", *AV1], check=True, env=ENV)
    return src, d / f"{name}.cgdm"


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> tuple[Path, Path]:
    return encode_card(tmp_path_factory.mktemp("proc"), "small", 48, 64)


def one_error_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cgdm: error:"), text
    return lines[0]


# ------------------------------------------------------------------- standard output

@pytest.mark.parametrize("args", [["--help"], ["--version"], ["encode", "--help"], ["decode", "--help"],
                                  ["info", "--help"], ["eval", "--help"], ["-h"]])
def test_help_and_version_to_a_full_disk_is_one_line(args):
    with open("/dev/full", "wb") as full:
        res = subprocess.run(CGDM + args, stdout=full, stderr=subprocess.PIPE, env=ENV)
    assert res.returncode == 1
    assert one_error_line(res.stderr) == "cgdm: error: standard output: No space left on device"


def test_info_to_a_full_disk_is_one_line(coded):
    for extra in ([], ["--json"]):
        with open("/dev/full", "wb") as full:
            res = subprocess.run(CGDM + ["info", str(coded[1]), *extra], stdout=full,
                                 stderr=subprocess.PIPE, env=ENV)
        assert res.returncode == 1
        assert "No space left on device" in one_error_line(res.stderr)


def closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess:
    """Run with standard output a pipe whose reader is already gone (``| head -c 0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(CGDM + args, stdout=write_end, stderr=subprocess.PIPE, env=ENV, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("quiet", [True, False])
def test_closed_stdout_ends_quietly_with_status_141(coded, quiet):
    res = closed_pipe_run(["decode", str(coded[1]), "-o", "-", *(["-Q"] if quiet else [])])
    assert res.returncode == 141
    err = res.stderr.decode()
    assert "error" not in err and "Traceback" not in err and "Broken pipe" not in err
    if quiet:
        assert err == ""


@pytest.mark.parametrize("args", [["--help"], ["encode", "--help"], ["--version"]])
def test_help_into_a_closed_pipe_is_quiet(args):
    res = closed_pipe_run(args)
    assert res.returncode == 141 and res.stderr == b""


def test_encode_to_a_closed_pipe_leaves_no_file(coded, tmp_path):
    res = closed_pipe_run(["encode", str(coded[0]), "-o", "-", "-Q", *AV1])
    assert res.returncode == 141 and res.stderr == b""


# ------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_is_one_line_and_leaves_no_file(coded, tmp_path):
    """SIGINT while the encoder works (the learned base loads torch: seconds to interrupt in)."""
    out = tmp_path / "x.cgdm"
    p = subprocess.Popen(CGDM + ["encode", str(coded[0]), "-o", str(out), "--base", "hyperprior",
                                 "--effort", "fast"], stderr=subprocess.PIPE,
                         env=dict(ENV, CGDM_BASE="hyperprior"), preexec_fn=default_sigint)
    assert p.stderr is not None
    assert b"reading" in p.stderr.readline()  # "[  0.0s] reading ...": the work has begun
    # "loading weights" comes ~0.1 s later, then torch loads for seconds: interrupted there, the
    # signal cannot lose a race with the next line on a loaded machine
    assert b"loading weights" in p.stderr.readline()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert one_error_line(err) == "cgdm: error: interrupted"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- progress

def read_terminal(master: int, wait: float = 30) -> str:
    """Everything a process writes to its terminal until it closes (or is silent ``wait`` s)."""
    text = ""
    while True:
        ready, _, _ = select.select([master], [], [], wait)
        if not ready:
            return text
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closes with the process
            return text
        if not chunk:
            return text
        text += chunk.decode()


def test_progress_begins_before_the_input_is_read_on_a_terminal(coded, tmp_path):
    """A 12 MP encode once printed nothing for 69 s: the first stage line now comes before
    any work, here before a single byte of the image has arrived on standard input."""
    master, slave = pty.openpty()
    out = tmp_path / "p.cgdm"
    start = time.monotonic()
    p = subprocess.Popen(CGDM + ["encode", "-", "-o", str(out), *AV1], stdin=subprocess.PIPE,
                         stderr=slave, env=ENV)
    os.close(slave)
    try:
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, "nothing on the terminal within 30 s"
        first = os.read(master, 4096).decode()
        waited = time.monotonic() - start
        assert "reading standard input" in first, first
        assert p.stdin is not None
        p.stdin.write(coded[0].read_bytes())  # only now does the input arrive
        p.stdin.close()
        text = first + read_terminal(master)
        assert p.wait(timeout=60) == 0, text
        assert "base codec (av1)" in text and "wrote" in text
        print(f"first progress line after {waited:.2f} s")  # measured: well under a second
    finally:
        os.close(master)
    assert out.is_file()


def test_quiet_silences_progress_on_a_terminal(coded, tmp_path):
    master, slave = pty.openpty()
    p = subprocess.Popen(CGDM + ["encode", str(coded[0]), "-o", str(tmp_path / "q.cgdm"), "-Q", *AV1],
                         stderr=slave, env=ENV)
    os.close(slave)
    assert p.wait(timeout=60) == 0
    ready, _, _ = select.select([master], [], [], 0.5)
    data = b""
    if ready:
        try:
            data = os.read(master, 4096)
        except OSError:
            pass
    os.close(master)
    assert data == b""


@pytest.fixture(scope="module")
def multi_tile(tmp_path_factory) -> Path:
    """A 1200x800 file with the diffusion stage: a decode of several tiles, in two chunks or more."""
    d = tmp_path_factory.mktemp("tiles")
    src = d / "wide.png"
    Image.fromarray(textured(800, 1200)).save(src)
    subprocess.run(CGDM + ["encode", str(src), "-o", str(d / "wide.cgdm"), "-Q", "--base", "av1", "--diffusion",
                           "--effort", "fast"], check=True, env=ENV, timeout=300)
    return d / "wide.cgdm"


def test_a_decode_reports_its_tiles_and_an_eta_off_a_terminal(multi_tile, tmp_path):
    """A 24 MP decode once said nothing for 30 s in a log: the diffusion stage's tiles now
    come with an ETA, a line at most every few seconds and one at the end."""
    res = subprocess.run(CGDM + ["decode", str(multi_tile), "-o", str(tmp_path / "w.png")],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if "diffusion tiles [" in line]
    assert lines and "\r" not in res.stderr, res.stderr  # a log gets whole lines, no redrawing
    done, total = map(int, re.search(r"\] (\d+)/(\d+) done in", lines[-1]).groups())
    assert done == total > 1, lines
    assert re.search(rf"\] \d+/{total} ETA \d+s", res.stderr), res.stderr
    quiet = subprocess.run(CGDM + ["decode", str(multi_tile), "-o", str(tmp_path / "q.png"), "-Q"],
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_a_decode_redraws_its_tile_count_on_a_terminal(multi_tile, tmp_path):
    master, slave = pty.openpty()
    p = subprocess.Popen(CGDM + ["decode", str(multi_tile), "-o", str(tmp_path / "t.png")], stderr=slave, env=ENV)
    os.close(slave)
    try:
        text = read_terminal(master)
    finally:
        os.close(master)
    assert p.wait(timeout=60) == 0, text
    assert re.search(r"\r\x1b\[K\[ *[\d.]+s\] diffusion tiles \[[#.]+\] \d+/\d+ ETA", text), repr(text)


# ------------------------------------------------------------- inputs changed meanwhile

def test_an_input_truncated_while_it_is_read_is_no_bus_error(tmp_path):
    """Pillow memory-maps uncompressed files it opens by name (PGM, BMP, raw TIFF); another
    process truncating the file meanwhile then killed cgdm with SIGBUS ("Bus error")."""
    src = tmp_path / "gray.pgm"
    Image.fromarray(textured(512, 512)).convert("L").save(src)
    code = (
        "import os, sys\n"
        "from cgdm_codec import imageio\n"
        "real = imageio.from_pil\n"
        "def truncating(im, limits=None):\n"
        "    os.truncate(sys.argv[1], 0)  # another process rewrites the file meanwhile\n"
        "    return real(im, limits)\n"
        "imageio.from_pil = truncating\n"
        "img = imageio.load(sys.argv[1])\n"
        "print(img.width, img.height)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, env=ENV, timeout=60)
    assert res.returncode == 0, (res.returncode, res.stderr.decode()[-500:])
    assert res.stdout.split() == [b"512", b"512"]


def test_image_files_are_not_memory_mapped(tmp_path, monkeypatch):
    import mmap

    from cgdm_codec import imageio

    mapped: list[tuple] = []
    real = mmap.mmap

    class Recording(real):  # type: ignore[misc, valid-type]
        def __new__(cls, *args, **kwargs):
            mapped.append(args)
            return real.__new__(cls, *args, **kwargs)

    monkeypatch.setattr(mmap, "mmap", Recording)
    for name, im in (("g.pgm", Image.new("L", (64, 48), 90)), ("a.tif", Image.new("RGBA", (64, 48))),
                     ("g.bmp", Image.new("L", (64, 48), 7))):
        im.save(tmp_path / name)
        assert imageio.load(tmp_path / name).width == 64
    assert mapped == []


def test_stdin_image_bytes_named_in_errors():
    res = subprocess.run(CGDM + ["encode", "-", "-Q", *AV1], input=b"definitely not an image", capture_output=True,
                         env=ENV)
    assert res.returncode == 1 and res.stdout == b""
    line = one_error_line(res.stderr)
    assert "standard input (23 bytes): not a readable image" in line and "BytesIO" not in line


@pytest.mark.torch
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupting_a_batch_stops_every_worker_at_once(tmp_path, how):
    """Ctrl-C reaches the whole process group, SIGTERM only the parent. Either way no file is
    started or finished after it (the pool used to run its queued files to the end first),
    the workers' temporary files are gone, and one line says so."""
    images = []
    for i in range(40):  # still running at the signal on a fast CPU (6 files took under 4 s with AMX)
        p = tmp_path / f"p{i}.png"
        Image.fromarray(textured(256, 384, seed=i)).save(p)
        images.append(str(p))
    out = tmp_path / "out"
    p = subprocess.Popen(CGDM + ["encode", *images, "-o", f"{out}/", "-j", "2", "--base", "hyperprior",
                                 "--effort", "fast"], stderr=subprocess.PIPE,
                         env=dict(ENV, CGDM_BASE="hyperprior"), start_new_session=True,
                         preexec_fn=default_sigint)
    time.sleep(4)  # the workers have loaded torch and are encoding
    signalled = time.time()
    if how == "ctrl-c":
        os.killpg(p.pid, signal.SIGINT)
    else:
        p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    stopped_in = time.time() - signalled
    assert p.returncode == 130, err
    lines = err.decode().strip().splitlines()
    assert "Traceback" not in err.decode() and lines[-1] == "cgdm: error: interrupted", err
    assert [line for line in lines if line.startswith("cgdm: error:")] == ["cgdm: error: interrupted"]
    left = list(out.iterdir())
    assert not [q.name for q in left if q.name.startswith(".")]  # no temporary file
    late = [q.name for q in left if q.stat().st_mtime > signalled + 0.5]  # finished after Ctrl-C
    assert late == [], (late, stopped_in)
    assert stopped_in < 30, stopped_in


def test_binary_output_to_a_terminal_is_refused(coded, tmp_path):
    """``-o -`` refused a terminal; ``-o /dev/stdout`` (a device, written directly) must too."""
    for out in ("-", "/dev/stdout"):
        master, slave = pty.openpty()
        res = subprocess.run(CGDM + ["decode", str(coded[1]), "-o", out, "-Q"], stdout=slave,
                             stderr=subprocess.PIPE, env=ENV, timeout=60)
        os.close(slave)
        os.close(master)
        assert res.returncode == 2
        assert "refusing to write binary data to a terminal" in one_error_line(res.stderr)
    with open(tmp_path / "redirected.png", "wb") as f:  # /dev/stdout redirected to a file is fine
        res = subprocess.run(CGDM + ["decode", str(coded[1]), "-o", "/dev/stdout", "-Q"], stdout=f, env=ENV)
    assert res.returncode == 0 and Image.open(tmp_path / "redirected.png").size == (64, 48)
