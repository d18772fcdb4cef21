"""From exceptions to what the user sees: one line on stderr and an exit code, never a traceback.

Exit codes: 0 success, 1 an error, 2 a usage error (an invalid option or combination),
130 interrupted (Ctrl-C, SIGTERM), 141 standard output closed by its reader. 141 is what a
shell reports for a filter that a closed pipe ended (128 + SIGPIPE), so ``cgdm decode x -o -
| head -c 0`` ends as ``gzip -dc x.gz | head -c 0`` does: quietly, with the status a
``set -o pipefail`` script expects. It is an exit code, not the signal itself, so that the
files a run created are removed on the way out, as for any other failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import click

from ..atomic import OutputExistsError
from ..errors import ConfigError, FormatError, ImageError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE  # 141

T = TypeVar("T")


class StdoutClosed(Exception):
    """Standard output's reader went away (EPIPE): end quietly, like other Unix filters."""


class StdoutFailed(Exception):
    """Writing standard output failed otherwise (a full disk, an I/O error): one line."""


@contextlib.contextmanager
def writing_stdout() -> Iterator[None]:
    """Around every write to standard output: its failures become the two exceptions above,
    so that they are told apart from the errors of the files a command reads and writes."""
    try:
        yield
    except OSError as e:
        if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
            raise StdoutClosed() from None
        raise StdoutFailed(f"standard output: {e.strerror or e}") from None


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that the interpreter's final flush of bytes
    that could not be written does not fail again and print a traceback at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (tests' CliRunner)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def echo_err(line: str) -> None:
    """One line on stderr; if stderr itself is gone there is nowhere to say anything."""
    try:
        click.echo(line, err=True)
    except OSError:
        pass


def fail(msg: str, code: int = EXIT_ERROR) -> NoReturn:
    echo_err(f"cgdm: error: {msg}")
    sys.exit(code)


def closed_pipe_exit() -> NoReturn:
    """No message: the reader chose to stop reading (``head``), which is not an error to report."""
    silence_stdout()
    sys.exit(EXIT_CLOSED_PIPE)


def describe_error(e: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an expected failure; None for a bug."""
    from ..target import TargetError

    if isinstance(e, StdoutClosed):
        return "standard output closed", EXIT_CLOSED_PIPE
    if isinstance(e, StdoutFailed):
        return str(e), EXIT_ERROR
    if isinstance(e, ConfigError):
        return str(e), EXIT_USAGE
    if isinstance(e, (FormatError, ImageError, OutputExistsError, TargetError)):
        return str(e), EXIT_ERROR
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(e, MemoryError):
        return "out of memory (try --base-only or a smaller image)", EXIT_ERROR
    if isinstance(e, OSError):
        return f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}".lstrip(": "), EXIT_ERROR
    if isinstance(e, RuntimeError):  # WeightsError, device errors
        return (str(e).splitlines()[0] if str(e) else type(e).__name__), EXIT_ERROR
    return None


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM becomes KeyboardInterrupt, so that a killed run, too, removes its temporary
    output file on the way out."""
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_guarded(fn: Callable[..., T], *args: Any, name: Callable[[str], str] | None = None,
                **kwargs: Any) -> T:
    """Turn every expected failure into one line on stderr and a non-zero exit code.

    ``name`` rewrites a message so that it says which file it is about (one-file commands).
    """
    try:
        with sigterm_interrupts():
            return fn(*args, **kwargs)
    except StdoutClosed:
        closed_pipe_exit()
    except (Exception, KeyboardInterrupt) as e:
        if isinstance(e, click.ClickException):
            raise
        described = describe_error(e)
        if described is None:
            raise
        msg, code = described
        if name is not None and code != EXIT_INTERRUPTED:
            msg = name(msg)
        if isinstance(e, StdoutFailed):
            silence_stdout()
        fail(msg, code)


class GuardedCommand(click.Command):
    """A command whose own output (``--help``) fails like everything else: one line."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with writing_stdout():
            return super().make_context(*args, **kwargs)


class GuardedGroup(click.Group):
    """The ``cgdm`` group: ``--help`` and ``--version`` of the group and of every command
    written to a full disk end in one line (exit 1), to a closed pipe quietly (exit 141)."""

    command_class = GuardedCommand

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with writing_stdout():
            return super().make_context(*args, **kwargs)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except StdoutClosed:
            closed_pipe_exit()
        except StdoutFailed as e:
            silence_stdout()
            fail(str(e))
        except ConfigError as e:  # a usage error a command found itself: one line, exit 2
            fail(str(e), EXIT_USAGE)
        except OSError:  # stderr failed while click showed a usage error: nowhere to say it
            sys.exit(EXIT_ERROR)
