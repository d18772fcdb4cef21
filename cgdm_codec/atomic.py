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
import tempfile
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


def check_output(path: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Fail early, before any work: never the input, and no existing file without ``overwrite``."""
    for src in inputs:
        if same_file(path, src):
            raise OutputExistsError(path, is_input=True)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputExistsError(path)


def write_with(path: Path, writer: Callable[[BinaryIO], None], overwrite: bool,
               suffix: str = ".part") -> None:
    """Create ``path`` from ``writer(fileobj)`` atomically; see the module docstring."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".cgdm-", suffix=suffix, dir=directory)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
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
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`write_with`)."""
    write_with(path, lambda f: f.write(data), overwrite)
