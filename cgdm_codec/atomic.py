"""Publishing output files atomically, with cgdm's policy for existing files.

Pure standard library (the CLI imports it before torch). An output is written to a hidden
temporary file in the destination folder and only then given its name, so an interrupted
or failed run never leaves a partial output. Without ``overwrite`` the final step is a hard
link, which fails if the name exists — no window between "check" and "write" in which
another process's file could be clobbered.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class OutputExistsError(FileExistsError):
    """The output would replace a file it must not: the input, or any file without --force."""

    def __init__(self, path: Path, is_input: bool = False) -> None:
        why = ("is the input file; cgdm never overwrites its input" if is_input
               else "already exists (use -f/--force to overwrite it)")
        super().__init__(errno.EEXIST, f"{path} {why}", str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (also through symlinks and hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


#: Names of this process's own file descriptors: written through, never renamed over (a
#: rename would replace the symlink ``/dev/stdout`` itself when standard output is a file).
_DESCRIPTOR_NAMES = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")


def is_stream(path: Path) -> bool:
    """Whether ``path`` names a character device or a named pipe (``/dev/null``, ``/dev/stdout``
    on a pipe, a FIFO): something written to as a stream, never replaced by a rename."""
    name = os.path.normpath(os.path.abspath(path))
    if name in ("/dev/stdout", "/dev/stderr") or name.startswith(_DESCRIPTOR_NAMES[2:]):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _named(e: OSError, path: Path, what: str = "") -> OSError:
    """The same error, naming the user's path instead of a temporary file's."""
    text = f"{what} ({e.strerror})" if what and e.strerror else (e.strerror or str(e))
    return type(e)(e.errno, text, str(path)) if e.errno is not None else OSError(text)


def check_output(path: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Fail early, before any work, with the user's path in the message: never the input,
    no existing file without ``overwrite``, and a folder that exists and takes a new file.

    Character devices and named pipes (``/dev/null``) are accepted as they are: they are
    written as streams (:func:`write_with`).
    """
    for src in inputs:
        if same_file(path, src):
            raise OutputExistsError(path, is_input=True)
    if is_stream(path):
        return
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder (end the name with / to write into it)", str(path))
    if os.path.lexists(path) and not path.is_file() and not path.is_symlink():
        raise OSError(errno.EINVAL, "is not a regular file", str(path))
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputExistsError(path)
    folder = _folder(path)
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, f"folder {folder} does not exist", str(path))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", str(path))
    try:  # the one reliable test: create (and remove) a file where the output will go
        fd, probe = tempfile.mkstemp(prefix=".cgdm-", suffix=".probe", dir=folder)
    except OSError as e:
        raise _named(e, path, f"cannot create a file in folder {folder}") from None
    os.close(fd)
    os.unlink(probe)


def write_with(path: Path, writer: Callable[[BinaryIO], None], overwrite: bool,
               suffix: str = ".part") -> None:
    """Create ``path`` from ``writer(fileobj)`` atomically; see the module docstring.

    A character device or named pipe is written directly (it cannot be renamed over).
    An ``OSError`` names ``path``, never the temporary file.
    """
    if is_stream(path):
        try:
            with open(path, "wb") as f:
                writer(f)
        except OSError as e:
            raise _named(e, path) from None
        return
    fd, tmp = _new_temp(path, suffix)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        with _publishing:
            _check_cancelled()
            _publish(tmp, path, overwrite)
    except OutputExistsError:
        raise
    except OSError as e:
        raise _named(e, path) from None
    finally:
        with _publishing:
            _pending.discard(tmp)
        Path(tmp).unlink(missing_ok=True)


#: Temporary files being written, and whether the run was cancelled: an interrupted command
#: whose work goes on in a worker thread (``cli.jobs.run_interruptible``) must neither leave
#: those files behind nor publish an output after it said "interrupted".
_publishing = threading.Lock()
_pending: set[str] = set()
_cancelled = threading.Event()


def cancel_writes() -> None:
    """From now on no output is created or published, and the temporary files being written
    are removed. For the thread that took Ctrl-C while another one still works."""
    with _publishing:
        _cancelled.set()
        for tmp in _pending:
            Path(tmp).unlink(missing_ok=True)
        _pending.clear()


def _check_cancelled() -> None:
    if _cancelled.is_set():
        raise KeyboardInterrupt


def _new_temp(path: Path, suffix: str) -> tuple[int, str]:
    """A hidden temporary file beside ``path``, registered for :func:`cancel_writes`."""
    directory = _folder(path)
    with _publishing:
        _check_cancelled()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".cgdm-", suffix=suffix, dir=directory)
        except OSError as e:
            raise _named(e, path, f"cannot create a file in folder {directory}") from None
        _pending.add(tmp)
    return fd, tmp


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    """Give the finished temporary file its name: never over an existing file without
    ``overwrite`` (a hard link fails if the name exists)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as e:  # file systems without hard links: check, then rename
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists() or path.is_symlink():
            raise OutputExistsError(path) from None
        os.replace(tmp, path)


def write_all(stream: BinaryIO, data: bytes) -> None:
    """Write every byte of ``data`` to ``stream`` (the caller flushes).

    Why not one ``stream.write(data)``: an unbuffered stream (``sys.stdout.buffer`` under
    ``python -u`` or ``PYTHONUNBUFFERED``, a raw ``FileIO``) may take only part of the bytes
    and return the count, for instance a pipe whose reader leaves mid-write. Ignoring that
    count would report success for lost data; writing the rest raises the real error
    (``BrokenPipeError``) instead. A write that takes nothing is an error too.
    """
    view = memoryview(data).cast("B")
    while view:
        n = stream.write(view)
        if n is None:  # a non-blocking stream that could take nothing now
            raise BlockingIOError(errno.EAGAIN, "the output stream takes no more bytes")
        if n <= 0:
            raise OSError(errno.EIO, "the output stream took no bytes")
        view = view[n:]


def write_atomic(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`write_with`)."""
    write_with(path, lambda f: write_all(f, data), overwrite)
