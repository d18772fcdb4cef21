"""The `cgdm` command line: a thin layer over the pipeline.

Only click and the pure-Python container are imported at start-up, so `cgdm --help` and
`cgdm info` answer instantly; torch and CompressAI load inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .atomic import OutputExistsError, check_output, write_atomic
from .batch import Outcome
from .container import (ENV_MAX_PIXELS, ENV_MAX_SIDE, MAX_DIM, MAX_FILE_BYTES, MAX_PIXELS, Limits, parse,
                        read_file, summary)
from .errors import ConfigError, FormatError, ImageError
from .imageio import PNG_LEVEL  # imageio loads Pillow and numpy only inside its functions


class Reporter:
    """Stage messages with elapsed time on stderr, and progress bars with an ETA for
    counted work (diffusion steps, fine-tuning iterations); silenced by --quiet."""

    BAR = 24

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.t0 = quiet, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_event = self.t0
        self.stage: tuple[str, float, int] | None = None  # what, start time, last count
        self.last_line = 0.0

    def __call__(self, msg: str) -> None:
        self.last_event = time.monotonic()
        if not self.quiet:
            click.echo(f"[{self.last_event - self.t0:5.1f}s] {msg}", err=True)

    def step(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.stage is None or self.stage[0] != what or done <= self.stage[2]:
            self.stage = (what, self.last_event, 0)
        start = self.stage[1]
        self.stage = (what, start, done)
        self.last_event = now
        if self.quiet:
            return
        line = progress_line(what, done, total, now - start, now - self.t0, self.BAR)
        if self.tty:
            click.echo("\r" + line + ("\n" if done >= total else ""), err=True, nl=False)
        elif done >= total or now - self.last_line >= 5.0:
            click.echo(line, err=True)
            self.last_line = now


def progress_line(what: str, done: int, total: int, stage_seconds: float, clock: float,
                  width: int) -> str:
    """``[ 12.0s] what [#####.....] 5/10 ETA 12s``: the remaining time assumes the pace so far."""
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    if done >= total:
        tail = f"done in {stage_seconds:.1f}s"
    else:
        tail = f"ETA {stage_seconds / max(done, 1) * (total - done):.0f}s"
    return f"[{clock:5.1f}s] {what} [{bar}] {done}/{total} {tail}"


def fail(msg: str, code: int = 1) -> NoReturn:
    click.echo(f"cgdm: error: {msg}", err=True)
    sys.exit(code)


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def describe_error(e: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an expected failure; None for a bug."""
    from .target import TargetError

    if isinstance(e, ConfigError):
        return str(e), 2
    if isinstance(e, (FormatError, ImageError, OutputExistsError, TargetError)):
        return str(e), 1
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(e, MemoryError):
        return "out of memory (try --base-only or a smaller image)", 1
    if isinstance(e, OSError):
        return f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}".lstrip(": "), 1
    if isinstance(e, RuntimeError):  # WeightsError, device errors
        return (str(e).splitlines()[0] if str(e) else type(e).__name__), 1
    return None


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


def run_guarded(fn, *args, **kwargs):
    """Turn every expected failure into one line on stderr and a non-zero exit code."""
    try:
        with sigterm_interrupts():
            return fn(*args, **kwargs)
    except (Exception, KeyboardInterrupt) as e:
        if isinstance(e, click.ClickException):
            raise
        described = describe_error(e)
        if described is None:
            raise
        fail(*described)


def limits() -> Limits:
    """The size limits the group options (or their environment variables) set."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Limits) if ctx is not None else None
    return found if found is not None else Limits.from_env()


DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                      show_default=True, help="Where the networks run (entropy coding always runs on the CPU).")
QUIET = click.option("--quiet", "-Q", is_flag=True, help="No progress messages on stderr.")
FORCE = click.option("--force", "-f", is_flag=True,
                     help="Overwrite the output file if it exists (never the input).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cgdm")
@click.option("--max-side", type=click.IntRange(1, MAX_DIM), envvar=ENV_MAX_SIDE, default=MAX_DIM,
              show_default=True, metavar="PX",
              help=f"Refuse images (input or .cgdm) wider or taller than this [env {ENV_MAX_SIDE}].")
@click.option("--max-pixels", type=click.IntRange(1, MAX_PIXELS), envvar=ENV_MAX_PIXELS,
              default=MAX_PIXELS, show_default=True, metavar="N",
              help=f"Refuse images with more pixels than this; bounds memory [env {ENV_MAX_PIXELS}].")
@click.pass_context
def main(ctx: click.Context, max_side: int, max_pixels: int) -> None:
    """cgdm: a perceptual image codec (learned base codec + diffusion decoder).

    \b
      cgdm encode img.png -q 3 -o img.cgdm
      cgdm decode img.cgdm -o out.png
      cgdm info img.cgdm

    An existing output file is never replaced without -f/--force, the input never.
    """
    ctx.obj = Limits(max_side, max_pixels)


# ------------------------------------------------------------------ files, pipes, batches

STDIO = "-"


def is_stdio(p: Path | str | None) -> bool:
    return p is not None and str(p) == STDIO


def plan_outputs(inputs: tuple[Path, ...], output: Path | None, default: Callable[[Path], Path],
                 in_folder: Callable[[Path], str]) -> list[Path]:
    """Where each input goes: -o FILE or - for one input, -o FOLDER/ for any number of them.

    A folder is an existing directory or a name ending in "/"; with several inputs -o always
    names a folder (created if missing). Without -o each output lies beside its input, and
    standard input goes to standard output.
    """
    if any(is_stdio(p) for p in inputs) and len(inputs) > 1:
        raise click.UsageError("'-' (standard input) must be the only input")
    if output is None:
        return [Path(STDIO) if is_stdio(p) else default(p) for p in inputs]
    if is_stdio(output):
        if len(inputs) > 1:
            raise click.UsageError("-o - (standard output) takes one input")
        return [Path(STDIO)]
    folder = len(inputs) > 1 or output.is_dir() or str(output).endswith(("/", "\\"))
    if not folder:
        return [output]
    if any(is_stdio(p) for p in inputs):
        raise click.UsageError("standard input has no name to put in a folder; give -o FILE")
    outs = [output / in_folder(p) for p in inputs]
    seen: dict[Path, Path] = {}
    for src, out in zip(inputs, outs):
        if out in seen:
            raise click.UsageError(f"{seen[out]} and {src} would both be written to {out}")
        seen[out] = src
    return outs


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
        raise ConfigError("refusing to write binary data to a terminal; use -o FILE or redirect")


def write_stdout(data: bytes) -> None:
    """The whole output in one write, after it is complete: a failed run writes nothing."""
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


@dataclass(frozen=True)
class EncodeJob:
    """Everything one ``cgdm encode`` of one file needs (picklable, for the workers)."""

    src: Path
    out: Path
    quality: int
    limits: Limits
    force: bool = False
    size: int | None = None  # target bytes
    bpp: float | None = None  # target bits per pixel
    metadata: str = "all"  # which of ICC, EXIF, XMP to carry (imageio.select_metadata)
    options: dict = field(default_factory=dict)  # the rest, as pipeline.encode_image takes them


@dataclass(frozen=True)
class DecodeJob:
    src: Path
    out: Path
    fmt: str  # Pillow format name
    limits: Limits
    force: bool = False
    base_only: bool = False
    steps: int | None = None
    device: str = "auto"
    strip: bool = False  # write no metadata
    png_level: int = PNG_LEVEL  # zlib level of PNG outputs


def _open_output(src: Path, out: Path, force: bool) -> None:
    """Fail before any work: no binary data to a terminal, no file replaced without -f."""
    if is_stdio(out):
        check_stdout()
    else:
        check_output(out, force, () if is_stdio(src) else (src,))


def encode_one(job: EncodeJob, report: Reporter) -> str:
    """Encode one file; returns the line that says what was written."""
    _open_output(job.src, job.out, job.force)
    from . import imageio

    if is_stdio(job.src):
        img = imageio.load_bytes(read_stdin(), job.limits)
    else:
        img = imageio.load(job.src, job.limits)
    img.metadata = imageio.select_metadata(img.metadata, job.metadata)
    for note in img.notes:
        report(f"note: {note}")
    report("starting the codec")
    opts = dict(job.options, progress=report, step_progress=report.step)
    if job.size is not None or job.bpp is not None:
        from .target import encode_to_size

        budget = job.size if job.size is not None else int(job.bpp * img.width * img.height / 8)
        fitted = encode_to_size(img, budget, **opts)
        data = fitted.data
        report(f"chose {fitted.setting.describe(fitted.base)}: {len(data)} bytes for a target of "
               f"{budget} ({100 * fitted.miss:.1f} % under)")
    else:
        from .pipeline import encode_image

        data = encode_image(img, job.quality, **opts)
    if is_stdio(job.out):
        write_stdout(data)
    else:
        write_atomic(job.out, data, overwrite=job.force)
    name = "standard output" if is_stdio(job.out) else str(job.out)
    return f"wrote {name} ({len(data)} bytes, {8 * len(data) / (img.width * img.height):.4f} bpp)"


def decode_one(job: DecodeJob, report: Reporter) -> str:
    """Decode one file; returns the line that says what was written."""
    _open_output(job.src, job.out, job.force)
    f = parse(read_stdin(), job.limits) if is_stdio(job.src) else read_file(job.src, job.limits)
    if job.strip:
        f = replace(f, metadata=None)
    from . import imageio
    from .pipeline import decode_image

    report("starting the codec")
    im = decode_image(f, base_only=job.base_only, steps=job.steps, device=job.device, progress=report,
                      step_progress=report.step)
    if is_stdio(job.out):
        import io

        buf = io.BytesIO()
        notes = imageio.write_image(im, buf, job.fmt, png_level=job.png_level)
        write_stdout(buf.getvalue())
    else:
        notes = imageio.save(im, job.out, overwrite=job.force, png_level=job.png_level)
    for note in notes:
        report(f"note: {note}")
    return f"wrote {'standard output' if is_stdio(job.out) else job.out} ({f.width}x{f.height})"


def _guarded(run_one: Callable[[Any, Reporter], str], job: Any) -> Outcome:
    """One file of a batch, its expected failures turned into an Outcome."""
    try:
        return Outcome(job, message=run_one(job, Reporter(quiet=True)))
    except Exception as e:
        if isinstance(e, click.ClickException):
            return Outcome(job, error=e.format_message(), code=e.exit_code)
        described = describe_error(e) or (f"internal error ({type(e).__name__}: {e})", 1)
        msg = described[0] if str(job.src) in described[0] else f"{job.src}: {described[0]}"
        return Outcome(job, error=msg, code=described[1])


def encode_job(job: EncodeJob) -> Outcome:
    return _guarded(encode_one, job)


def decode_job(job: DecodeJob) -> Outcome:
    return _guarded(decode_one, job)


def run_batch(work: list, run_one: Callable[[Any], Outcome], jobs: int | None, quiet: bool,
              verb: str) -> None:
    """Every file, then one summary line; the exit code is the worst file's (like gzip)."""
    from . import batch

    report = Reporter(quiet)
    n = len(work)
    workers = min(jobs or batch.default_jobs(n), n)
    report(f"{n} files, {workers} worker{'s' if workers > 1 else ''}")
    failed, code = 0, 0
    report.step("files", 0, n)
    try:
        with sigterm_interrupts():
            for i, outcome in enumerate(batch.run(work, run_one, workers), 1):
                if outcome.ok:
                    report(outcome.message)
                else:
                    failed += 1
                    code = max(code, outcome.code)
                    click.echo(f"cgdm: error: {outcome.error}", err=True)
                report.step("files", i, n)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    if not quiet or failed:
        elapsed = time.monotonic() - report.t0
        click.echo(f"cgdm: {verb} {n - failed} of {n} files in {elapsed:.1f}s"
                   + (f"; {failed} failed" if failed else ""), err=True)
    if code:
        sys.exit(code)


def _make_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


def run_all(work: list, run_one: Callable[[Any, Reporter], str], as_job: Callable[[Any], Outcome],
            output: Path | None, jobs: int | None, quiet: bool, verb: str) -> None:
    """One file: its stage messages and its own exit code. Several: a batch (``run_batch``)."""
    if len(work) == 1:
        report = Reporter(quiet)
        report(run_guarded(run_one, work[0], report))
        return
    if output is not None:
        run_guarded(_make_folder, output)
    run_batch(work, as_job, jobs, quiet, verb)


INPUTS = click.argument("inputs", nargs=-1, required=True, metavar="INPUT...",
                        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
JOBS = click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
                    help="Files coded at once, each in its own process [default: one per core, "
                         "as far as free memory allows].")


@main.command()
@INPUTS
@click.option("-q", "--quality", type=click.IntRange(1, 6), default=None,
              help="Quality level: 1 = smallest file (~0.06 bpp) .. 6 = best (~1 bpp)  [default: 3].")
@click.option("-o", "--output", type=click.Path(allow_dash=True, path_type=Path), default=None,
              help="Output .cgdm file, '-' (standard output) or a folder [default: INPUT with "
                   "extension .cgdm; standard output for '-' as INPUT].")
@click.option("--size", "target_size", type=click.IntRange(1, None), default=None, metavar="BYTES",
              help="Choose the quality whose file is the largest not over BYTES (instead of -q).")
@click.option("--bpp", "target_bpp", type=click.FloatRange(0, None, min_open=True), default=None,
              metavar="X", help="As --size, for a target of X bits per pixel.")
@click.option("--base-only", is_flag=True,
              help="Write a file without the diffusion stage (smaller, fast to decode, less detail).")
@click.option("--diffusion", "always_diffusion", is_flag=True,
              help="Always write the diffusion stage, even where the encoder's objective scores "
                   "the base-only decode better.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Noise seed the decoder's diffusion starts from (the first one tried when "
                   "searching seeds).")
@click.option("--steps", type=click.IntRange(1, 255), default=None,
              help="DDIM steps the decoder should run [default: the newest decoder's, 5].")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default="default",
              show_default=True,
              help="How hard the encoder works: the AV1 speed (8, 6, 4) and, for the diffusion "
                   "stage, its search for the syntax and seed: fast and default = one pass of the "
                   "syntax encoder (default scores the diffusion-or-not decision on the whole "
                   "image); max = the paper's 250 fine-tuning iterations and 4 seeds.")
@click.option("--finetune-iters", type=click.IntRange(0, 100000), default=None,
              help="Override the effort's number of per-image fine-tuning iterations.")
@click.option("--seeds", type=click.IntRange(1, 1024), default=None,
              help="Override the effort's number of noise seeds tried (each costs one decode).")
@click.option("--no-finetune", is_flag=True,
              help="Skip the per-image fine-tuning (seeds are still searched).")
@click.option("--base", "base", type=click.Choice(["av1", "hyperprior"]), default=None,
              help="Base codec: av1 (AV1 intra, the default) or hyperprior (the learned codec).")
@click.option("--av1-quality", type=click.IntRange(0, 100), default=None,
              help="AV1 base: Pillow's AVIF quality 0..100 instead of -q (a fine-grained rate).")
@click.option("--metadata", default="all", show_default=True, metavar="all|none|icc,exif,xmp",
              help="Which of the input's ICC profile, EXIF and XMP the file carries.")
@click.option("--strip", is_flag=True, help="Carry no metadata (same as --metadata none).")
@JOBS
@FORCE
@DEVICE
@QUIET
def encode(inputs: tuple[Path, ...], quality: int | None, output: Path | None,
           target_size: int | None, target_bpp: float | None, base_only: bool, always_diffusion: bool, seed: int,
           steps: int | None, effort: str, finetune_iters: int | None, seeds: int | None,
           no_finetune: bool, base: str | None, av1_quality: int | None, metadata: str, strip: bool,
           jobs: int | None, force: bool, device: str, quiet: bool) -> None:
    """Compress images (PNG, JPEG, WebP, TIFF, ... anything Pillow reads) to .cgdm.

    \b
      cgdm encode photo.jpg                 -> photo.cgdm
      cgdm encode *.png -o coded/ -j 2      -> coded/NAME.cgdm, two at a time
      cgdm encode photo.jpg --size 20000    -> the best file of at most 20000 bytes
      cat photo.png | cgdm encode - > photo.cgdm
    """
    given = [name for name, v in (("-q", quality), ("--size", target_size), ("--bpp", target_bpp),
                                  ("--av1-quality", av1_quality)) if v is not None]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} each choose the quality: give one")
    if base_only and always_diffusion:
        raise click.UsageError("--base-only and --diffusion contradict each other: give one")
    if av1_quality is not None and base == "hyperprior":
        raise click.UsageError("--av1-quality needs the AV1 base")
    keep = "none" if strip else metadata
    from .imageio import select_metadata

    run_guarded(select_metadata, None, keep)  # a bad choice: one line, exit 2
    outs = plan_outputs(inputs, output, lambda p: p.with_suffix(".cgdm"), lambda p: p.stem + ".cgdm")
    options = dict(diffusion=False if base_only else (True if always_diffusion else None), seed=seed, steps=steps, effort=effort,
                   finetune_iters=finetune_iters, seeds=seeds, finetune=not no_finetune,
                   device=device, base=base, fine=av1_quality)
    work = [EncodeJob(src, out, quality or 3, limits(), force, target_size, target_bpp, keep, options)
            for src, out in zip(inputs, outs)]
    run_all(work, encode_one, encode_job, output, jobs, quiet, "encoded")


@main.command()
@INPUTS
@click.option("-o", "--output", type=click.Path(allow_dash=True, path_type=Path), default=None,
              help="Output image, '-' (standard output) or a folder; the format follows the "
                   "extension (.png, .webp, .jpg, ...) [default: INPUT with extension .decoded.png; "
                   "standard output for '-' as INPUT].")
@click.option("--format", "fmt", default=None, metavar="EXT",
              help="Output format for standard output and folders (png, webp, jpg, tiff, ...) "
                   "[default: png].")
@click.option("--base-only", is_flag=True,
              help="Skip the diffusion stage: the base codec's reconstruction (a fast preview).")
@click.option("--steps", type=click.IntRange(1, 255), default=None,
              help="Override the file's number of DDIM steps (fewer is faster).")
@click.option("--strip", is_flag=True, help="Write no ICC profile, EXIF or XMP into the output.")
@click.option("--png-level", type=click.IntRange(0, 9), default=PNG_LEVEL, show_default=True,
              help="zlib level of PNG outputs (9: smallest file, several times slower to write).")
@JOBS
@FORCE
@DEVICE
@QUIET
def decode(inputs: tuple[Path, ...], output: Path | None, fmt: str | None, base_only: bool,
           steps: int | None, strip: bool, png_level: int, jobs: int | None, force: bool,
           device: str, quiet: bool) -> None:
    """Decode .cgdm files to images.

    \b
      cgdm decode photo.cgdm                    -> photo.decoded.png
      cgdm decode *.cgdm -o out/ --format webp  -> out/NAME.webp
      cgdm decode photo.cgdm -o - > photo.png
    """
    ext = "." + (fmt or "png").lower().lstrip(".")
    outs = plan_outputs(inputs, output, lambda p: p.with_suffix(".decoded" + ext), lambda p: p.stem + ext)

    def pick_format(out: Path) -> str:
        from . import imageio

        try:
            return imageio.format_for(ext if is_stdio(out) or fmt else (out.suffix or "."))
        except ImageError as e:
            raise ImageError(f"{out}: {e}" if not is_stdio(out) else str(e)) from None

    formats = run_guarded(lambda: [pick_format(out) for out in outs])
    work = [DecodeJob(src, out, fm, limits(), force, base_only, steps, device, strip, png_level)
            for src, out, fm in zip(inputs, outs, formats)]
    run_all(work, decode_one, decode_job, output, jobs, quiet, "decoded")


@main.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(input: Path, as_json: bool) -> None:
    """Describe a .cgdm file without decoding it."""

    def job() -> None:
        f = read_file(input, limits())
        s = summary(f, input.stat().st_size)
        if as_json:
            click.echo(json.dumps(s))
            return
        click.echo(f"{input}: cgdm format {s['format_version']}")
        click.echo(f"  image      {s['width']}x{s['height']} {s['colour_mode']}")
        click.echo(f"  quality    {s['quality']}")
        click.echo(f"  size       {s['bytes']} bytes, {s['bpp']} bpp "
                   f"({s['framing_bytes']} bytes of framing)")
        click.echo(f"  base codec {s['base_codec']}, weights {s['weights_id']}")
        if s.get("diffusion"):
            click.echo(f"  diffusion  {s['steps']} DDIM steps, seed {s['seed']}")
        else:
            click.echo(f"  diffusion  none (base codec only), seed {s['seed']}")
        click.echo("  sections   " + ", ".join(f"{k} {v} B" for k, v in s["sections"].items()))
        click.echo("  metadata   " + (", ".join(f"{k} {v} B" for k, v in s["metadata"].items()) or "none"))

    run_guarded(job)


def _levels(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[int, ...]:
    """-q accepts repeats and comma lists (-q 1 -q 3, -q 1,3,5); default all six levels."""
    levels: list[int] = []
    for v in values:
        for part in v.split(","):
            if not part.strip().isdigit() or not 1 <= int(part) <= 6:
                raise click.BadParameter(f"'{part}' is not a quality level 1..6", ctx, param)
            if int(part) not in levels:
                levels.append(int(part))
    return tuple(sorted(levels)) or (1, 2, 3, 4, 5, 6)


def _eval_command(a: dict) -> str:
    """The command line that reproduces a run's numbers (resume/quiet/keep-files left out)."""
    import shlex

    words = ["cgdm", "eval", str(a["folder"]), "-q", ",".join(map(str, a["levels"])), "--out", str(a["outdir"])]
    if a["downscale"] != 1.0:
        words += ["--downscale", f"{a['downscale']:g}"]
    if a["limit"]:
        words += ["--limit", str(a["limit"])]
    if not a["anchors"]:
        words.append("--no-anchors")
    elif a.get("avif_speed") is not None:
        words += ["--avif-speed", str(a["avif_speed"])]
    if tuple(a["ablations"]) != ("base-only",):
        for name in a["ablations"]:
            words += ["--ablation", name]
    if a["effort"]:
        words += ["--effort", a["effort"]]
    if a["device"] != "auto":
        words += ["--device", a["device"]]
    if a["threads"]:
        words += ["--threads", str(a["threads"])]
    return shlex.join(words)


@main.command("eval")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("-q", "--quality", "levels", multiple=True, callback=_levels, metavar="Q[,Q...]",
              help="cgdm quality levels, repeatable or comma-separated [default: 1..6].")
@click.option("-o", "--out", "outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for results.jsonl/.csv, summary.json, results.md and rd.png.")
@click.option("--downscale", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Resize every image by this factor first (0.5 for JPEG-sourced sets such as sunhays80).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (by name).")
@click.option("--anchors/--no-anchors", default=True, show_default=True,
              help="Also run Pillow's JPEG, WebP, AVIF (at --avif-speed and at speed 2) and, with "
                   "the JPEG XL plugin installed, JPEG XL over quality sweeps.")
@click.option("--avif-speed", type=click.IntRange(0, 10), default=None,
              help="libaom speed of the first AVIF anchor [default: 6, the speed of cgdm's default effort].")
@click.option("--ablation", "ablations", multiple=True, default=("base-only",), show_default=True,
              type=click.Choice(["base-only", "no-finetune", "none"]),
              help="Extra cgdm curves (repeatable; 'none' for none).")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default=None,
              help="Encoder effort [default: fast, where the encoder has efforts].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip (image, codec, setting) rows already in OUT; --no-resume starts again.")
@click.option("--keep-files", is_flag=True, help="Keep every coded file under OUT/files.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads for the codec [default: torch's]; metrics always use one.")
@DEVICE
@QUIET
def eval_(folder: Path, levels: tuple[int, ...], outdir: Path, downscale: float, limit: int | None,
          anchors: bool, avif_speed: int | None, ablations: tuple[str, ...], effort: str | None, resume: bool,
          keep_files: bool, threads: int | None, device: str, quiet: bool) -> None:
    """Rate-distortion-perception evaluation of every image in FOLDER, with anchors and plots."""
    cfg_args = dict(folder=folder, levels=levels, outdir=outdir, downscale=downscale, limit=limit,
                    anchors=anchors, avif_speed=avif_speed, ablations=ablations, effort=effort,
                    device=device, threads=threads)

    def job() -> None:
        if not folder.is_dir():
            raise OSError(2, "not a folder", str(folder))
        from .evaluation.runner import EvalConfig, run_eval

        cfg = EvalConfig(images=folder, outdir=outdir, levels=levels, downscale=downscale, limit=limit,
                         anchors=anchors, ablations=tuple(a for a in ablations if a != "none"),
                         effort=effort, device=device, resume=resume, keep_files=keep_files,
                         quiet=quiet, threads=threads, command=_eval_command(cfg_args),
                         **({} if avif_speed is None else {"avif_speed": avif_speed}))
        result = run_eval(cfg)
        if not quiet:
            click.echo(f"wrote {outdir}/results.md, summary.json, results.csv, results.jsonl, rd.png "
                       f"({result['images_complete']} images)", err=True)

    run_guarded(job)


if __name__ == "__main__":
    main()
