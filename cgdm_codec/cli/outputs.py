"""Where outputs go, checked before any work: names, folders, formats, standard input and output.

The habits are those of gzip, cwebp and avifenc: ``-o NAME`` is a file, ``-o DIR/`` (a
trailing ``/``) or an existing folder is a folder for any number of inputs (created if
missing), ``-`` is standard input or output, and a character device such as ``/dev/null``
is written as a stream. Every check that can fail runs before the first pixel is read, and
errors name the user's paths.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from ..atomic import check_output, is_stream, same_file, write_all
from ..container import MAX_FILE_BYTES
from ..errors import ConfigError, ImageError
from ..imageio import NO_SUCH_FILE
from .failures import writing_stdout

STDIO = "-"


def is_stdio(p: Path | str | None) -> bool:
    return p is not None and str(p) == STDIO


@dataclass(frozen=True)
class OutputPlan:
    """The output of each input, and the folder to create first (``-o DIR/``, several inputs)."""

    outputs: list[Path]
    folder: Path | None = None


def names_a_folder(output: str) -> bool:
    """``-o`` names a folder if it ends in ``/`` or is an existing folder. (The raw string:
    ``Path("newdir/")`` has already lost the slash.) Several inputs do not make a folder of
    a file name: ``-o two.cgdm`` with two inputs is refused, as gzip and cwebp refuse it,
    rather than creating a folder named like a file."""
    return output.endswith(("/", os.sep)) or os.path.isdir(output)


def plan_outputs(inputs: tuple[Path, ...], output: str | None, default: Callable[[Path], Path],
                 in_folder: Callable[[Path], str]) -> OutputPlan:
    """Where each input goes: -o FILE or - for one input, -o FOLDER/ for any number of them.

    Without -o each output lies beside its input, and standard input goes to standard output.
    Every refusal is a usage error (exit 2) of one line.
    """
    if any(is_stdio(p) for p in inputs) and len(inputs) > 1:
        raise ConfigError("'-' (standard input) must be the only input")
    if output is None:
        return OutputPlan([Path(STDIO) if is_stdio(p) else default(p) for p in inputs])
    if is_stdio(output):
        if len(inputs) > 1:
            raise ConfigError("-o - (standard output) takes one input")
        return OutputPlan([Path(STDIO)])
    if not names_a_folder(output):
        if len(inputs) > 1 and is_stream(Path(output)):
            raise ConfigError(f"-o {output} (a device or pipe) takes one input")
        if len(inputs) > 1:
            raise ConfigError(f"-o {output} names one file but there are {len(inputs)} inputs; "
                              f"for a folder end it with / (-o {output}/)")
        return OutputPlan([Path(output)])
    return _folder_plan(inputs, output, in_folder)


def _folder_plan(inputs: tuple[Path, ...], output: str, in_folder: Callable[[Path], str]) -> OutputPlan:
    """``-o DIR/``: each input's name in the folder; two inputs may not share one."""
    folder = Path(output)
    name = output.rstrip("/" + os.sep) or output  # "file/" does not exist to lexists: "file" does
    if os.path.lexists(name) and not folder.is_dir():
        raise ConfigError(f"-o {output}: {name} is a file, not a folder")
    if any(is_stdio(p) for p in inputs):
        raise ConfigError("standard input has no name to put in a folder; give -o FILE")
    outs = [folder / in_folder(p) for p in inputs]
    seen: dict[Path, Path] = {}
    for src, out in zip(inputs, outs):
        if out in seen:
            raise ConfigError(f"{seen[out]} and {src} would both be written to {out}")
        seen[out] = src
    return OutputPlan(outs, folder)


def make_folder(folder: Path) -> None:
    """Create the output folder (and its parents), naming it in an error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot create the folder ({e.strerror or e})", str(folder)) from None


def check_input(src: Path) -> None:
    """A missing input is reported before anything else, in one wording for every command."""
    if is_stdio(src):
        return
    if not src.exists():
        raise FileNotFoundError(errno.ENOENT, NO_SUCH_FILE, str(src))


def is_terminal(out: Path) -> bool:
    """Whether a device output is a terminal: ``-o /dev/stdout`` with no redirection, ``/dev/tty``."""
    name = os.path.normpath(os.path.abspath(out))
    for stream, names in ((sys.stdout, ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")),
                          (sys.stderr, ("/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"))):
        if name in names:
            try:
                return stream.isatty()
            except (AttributeError, ValueError):
                return False
    return os.path.realpath(name).startswith(("/dev/tty", "/dev/pts/", "/dev/console"))


def check_target(src: Path, out: Path, force: bool) -> None:
    """Fail before any work: the input exists, no binary data goes to a terminal, no file is
    replaced without -f, and the output's folder exists and takes a new file."""
    check_input(src)
    if is_stdio(out):
        check_stdout()
    elif is_stream(out) and is_terminal(out):
        raise ConfigError(f"refusing to write binary data to a terminal ({out}); use -o FILE or redirect")
    else:
        check_output(out, force, () if is_stdio(src) else (src,))


# ------------------------------------------------------------------------------ formats

def image_format(ext: str) -> str | None:
    """Pillow's format name for a file extension, or None."""
    from .. import imageio

    try:
        return imageio.format_for(ext)
    except ImageError:
        return None


def check_encode_output(src: Path, out: Path) -> None:
    """An encode writes .cgdm bytes: an image extension other than .cgdm (``-o out.jpg``) is
    a mistake that would leave a file no image viewer opens. (The input itself as the output
    is left to ``check_target``, which says so.)"""
    if is_stdio(out) or is_stream(out) or (not is_stdio(src) and same_file(src, out)):
        return
    ext = out.suffix.lower()
    if ext and ext != ".cgdm":
        fmt = image_format(ext)
        if fmt is not None:
            raise click.UsageError(f"{out}: {ext} names the {fmt} image format, but cgdm encode "
                                   f"writes .cgdm files; use -o {out.with_suffix('.cgdm')} (or "
                                   f"cgdm decode to write {fmt})")


def decode_format(out: Path, wanted: str | None) -> str:
    """The Pillow format of a decode output: the extension's, else ``--format`` (``wanted``, a
    Pillow format name), else PNG for standard output and devices such as /dev/null.

    An extension and a ``--format`` that disagree are a usage error (exit 2), not a PNG in a
    file named .webp; so is a name whose extension (or lack of one) names no format."""
    if is_stdio(out) or is_stream(out):
        return wanted or "PNG"
    ext = out.suffix
    named = image_format(ext) if ext else None
    if named is not None and wanted is not None and named != wanted:
        raise click.UsageError(f"{out} names the {named} format but --format says {wanted}; "
                               "give one, or make them agree")
    if named is not None:
        return named
    if wanted is not None:
        return wanted
    raise ConfigError(f"{out}: unknown output format '{ext or '(none)'}'; use e.g. .png or --format")


# -------------------------------------------------------------------------------- stdio

def read_stdin() -> bytes:
    """All of standard input, refusing more than a .cgdm file or an image may hold."""
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError("no input on standard input (pipe a file in, or give a file name)")
    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"standard input: more than {MAX_FILE_BYTES} bytes")
    return data


def check_stdout() -> None:
    if sys.stdout.isatty():
        raise ConfigError("refusing to write binary data to a terminal (standard output); use -o FILE or redirect")


def write_stdout(data: bytes) -> None:
    """The whole output at once, after it is complete: a failed run writes nothing. Every
    byte is accounted for (``write_all``), so a reader that leaves early (``| head -c 10``)
    ends the run with 141, never with a success message."""
    with writing_stdout():
        sys.stdout.flush()  # text written before (none today) keeps its place
        out = sys.stdout.buffer
        write_all(out, data)
        out.flush()


def echo_stdout(text: str) -> None:
    """A line of text on standard output (``cgdm info``), its failures told apart; written
    as bytes through ``write_stdout``, so that no short write goes unnoticed either."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    write_stdout((text + "\n").encode(encoding, "replace"))
