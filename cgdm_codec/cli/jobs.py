"""The work of one file (a picklable job) and the runner for one file or a batch of them.

A job is checked before it does anything (``outputs.check_target``), says what it is doing
as it goes (``progress.Reporter``), and returns the line that says what it wrote. One file
runs in this process with its stage messages; several run as a batch (``batch.run``), each
failure a line of its own, the exit code the worst file's, like gzip.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ..atomic import cancel_writes, write_atomic
from ..batch import Outcome
from ..container import CgdmFile, Limits, parse, read_file
from ..options import DecodeSettings, EncodeSettings
from .failures import EXIT_INTERRUPTED, describe_error, fail, run_guarded, sigterm_interrupts
from .outputs import check_input, check_target, is_stdio, make_folder, read_stdin, write_stdout
from .progress import Reporter

T = TypeVar("T")


@dataclass(frozen=True)
class EncodeJob:
    """Everything one ``cgdm encode`` of one file needs (picklable, for the workers)."""

    src: Path
    out: Path
    settings: EncodeSettings
    limits: Limits


@dataclass(frozen=True)
class DecodeJob:
    """Everything one ``cgdm decode`` of one file needs (picklable, for the workers)."""

    src: Path
    out: Path
    fmt: str  # Pillow's format name of this output: its extension's, else settings.fmt, else PNG
    settings: DecodeSettings
    limits: Limits


def _name(p: Path, stdio: str) -> str:
    return stdio if is_stdio(p) else str(p)


def about(job: Any, msg: str) -> str:
    """``msg`` naming the file it is about: the input, unless it names the input or output."""
    names = [str(job.src), str(job.out), "standard input", "standard output"]
    if any(n in msg for n in names if n != "-"):
        return msg
    return f"{_name(job.src, 'standard input')}: {msg}"


def encode_one(job: EncodeJob, report: Reporter) -> str:
    """Encode one file; returns the line that says what was written."""
    check_target(job.src, job.out, job.settings.force)
    from .. import imageio
    from ..api import encode_prepared

    report(f"reading {_name(job.src, 'standard input')}")
    if is_stdio(job.src):
        img = imageio.load_bytes(read_stdin(), job.limits)
    else:
        img = imageio.load(job.src, job.limits)
    img.metadata = imageio.select_metadata(img.metadata, job.settings.kept_metadata)
    if img.alpha is not None:
        report("alpha channel kept (coded losslessly)")
    for note in img.notes:
        report.note(note)
    data = encode_prepared(img, job.settings, report, report.step)
    name = _name(job.out, "standard output")
    report(f"writing {name}")
    if is_stdio(job.out):
        write_stdout(data)
    else:
        write_atomic(job.out, data, overwrite=job.settings.force)
    return f"wrote {name} ({len(data)} bytes, {8 * len(data) / (img.width * img.height):.4f} bpp)"


def stage_notes(f: CgdmFile, job: DecodeJob) -> list[str]:
    """What a decode setting cannot do for this file: --realism and --steps act on the
    diffusion stage, which a file written --base-only does not have. Said, not ignored."""
    settings = job.settings
    if f.diffusion or settings.base_only:
        return []
    given = [name for name, on in (("--realism", settings.realism > 0), ("--steps", settings.steps is not None))
             if on]
    if not given:
        return []
    from ..base.registry import is_lossless

    why = "a lossless file" if is_lossless(f.base_codec) else "written --base-only"
    return [f"{_name(job.src, 'standard input')} has no diffusion stage ({why}): "
            f"{' and '.join(given)} {'has' if len(given) == 1 else 'have'} no effect"]


def decode_one(job: DecodeJob, report: Reporter) -> str:
    """Decode one file; returns the line that says what was written."""
    settings = job.settings
    check_target(job.src, job.out, settings.force)
    report(f"reading {_name(job.src, 'standard input')}")
    f = parse(read_stdin(), job.limits) if is_stdio(job.src) else read_file(job.src, job.limits)
    for note in stage_notes(f, job):
        report.note(note)
    from .. import imageio
    from ..api import decode_with

    im = decode_with(f, settings, report, report.step)
    name = _name(job.out, "standard output")
    report(f"writing {name} ({job.fmt})")
    if is_stdio(job.out):
        buf = io.BytesIO()
        notes = imageio.write_image(im, buf, job.fmt, png_level=settings.png_level,
                                    quality=settings.output_quality, threads=settings.threads)
        write_stdout(buf.getvalue())
    else:
        notes = imageio.save(im, job.out, overwrite=settings.force, png_level=settings.png_level, fmt=job.fmt,
                             quality=settings.output_quality, threads=settings.threads)
    for note in notes:
        report.note(note)
    return f"wrote {name} ({f.width}x{f.height})"


def _guarded(run_one: Callable[[Any, Reporter], str], job: Any) -> Outcome:
    """One file of a batch, its expected failures turned into an Outcome."""
    report = Reporter(quiet=2)  # silent: the notes travel back with the outcome
    try:
        return Outcome(job, message=run_one(job, report), notes=tuple(report.notes))
    except Exception as e:
        if isinstance(e, click.ClickException):
            return Outcome(job, error=about(job, e.format_message()), code=e.exit_code)
        described = describe_error(e) or (f"internal error ({type(e).__name__}: {e})", 1)
        return Outcome(job, error=about(job, described[0]), code=described[1])


def encode_job(job: EncodeJob) -> Outcome:
    return _guarded(encode_one, job)


def decode_job(job: DecodeJob) -> Outcome:
    return _guarded(decode_one, job)


def run_batch(work: list, run_one: Callable[[Any], Outcome], jobs: int | None, quiet: int,
              verb: str) -> None:
    """Every file, then one summary line; the exit code is the worst file's (like gzip)."""
    from .. import batch

    n = len(work)
    workers = min(jobs or batch.default_jobs(n), n)
    failed, code = 0, 0
    with Reporter(quiet) as report:
        report(f"{n} files, {workers} worker{'s' if workers > 1 else ''}")
        report.step("files", 0, n)
        try:
            with sigterm_interrupts():
                for i, outcome in enumerate(batch.run(work, run_one, workers), 1):
                    for note in outcome.notes:
                        report.note(about(outcome.task, note))
                    if outcome.ok:
                        report(outcome.message)
                    else:
                        failed += 1
                        code = max(code, outcome.code)
                        report.close()
                        click.echo(f"cgdm: error: {outcome.error}", err=True)
                    report.step("files", i, n)
        except KeyboardInterrupt:
            report.close()
            fail("interrupted", EXIT_INTERRUPTED)
    if not quiet or failed:
        elapsed = time.monotonic() - report.t0
        click.echo(f"cgdm: {verb} {n - failed} of {n} files in {elapsed:.1f}s"
                   + (f"; {failed} failed" if failed else ""), err=True)
    if code:
        sys.exit(code)


def run_interruptible(work: Callable[[], T]) -> T:
    """``work()`` in a worker thread while this (main) thread waits, so that Ctrl-C and
    SIGTERM take effect at once: Python runs signal handlers in the main thread only, between
    bytecodes, and libaom encodes a 24 MP picture in one call of ~18 s. On an interrupt the
    worker is left to die with the process; ``atomic.cancel_writes`` makes sure that it
    publishes nothing and leaves no temporary file."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as e:  # handed to the main thread, which reports it
            outcome["error"] = e

    worker = threading.Thread(target=target, name="cgdm-work", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        cancel_writes()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_all(work: list, run_one: Callable[[Any, Reporter], str], as_job: Callable[[Any], Outcome],
            folder: Path | None, jobs: int | None, quiet: int, verb: str) -> None:
    """One file: its stage messages and its own exit code. Several: a batch (``run_batch``).
    ``folder`` (``-o DIR/``) is created first, once the one input is known to exist."""
    if len(work) == 1:
        job = work[0]
        report = Reporter(quiet)

        def single() -> str:
            with report:  # the clock line is gone before an error line is printed
                if folder is not None:
                    check_input(job.src)
                    make_folder(folder)
                return run_interruptible(lambda: run_one(job, report))

        report(run_guarded(single, name=lambda msg: about(job, msg)))
        return
    if folder is not None:
        run_guarded(make_folder, folder)
    run_batch(work, as_job, jobs, quiet, verb)


__all__ = ["DecodeJob", "EncodeJob", "about", "decode_job", "decode_one", "encode_job", "encode_one",
           "run_all", "run_batch"]
