"""The `cgdm` command line: a thin layer over the pipeline.

Only click and the pure-Python container are imported at start-up, so `cgdm --help` and
`cgdm info` answer instantly; torch and CompressAI load inside the commands that need them.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from .atomic import OutputExistsError, check_output, write_atomic
from .container import ENV_MAX_PIXELS, ENV_MAX_SIDE, MAX_DIM, MAX_PIXELS, Limits, read_file, summary
from .errors import ConfigError, FormatError, ImageError


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


def run_guarded(fn, *args, **kwargs):
    """Turn every expected failure into one line on stderr and a non-zero exit code.

    SIGTERM is turned into KeyboardInterrupt so that a killed run, too, removes its
    temporary output file on the way out.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return fn(*args, **kwargs)
    except ConfigError as e:
        fail(str(e), 2)
    except (FormatError, ImageError, OutputExistsError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except MemoryError:
        fail("out of memory (try --base-only or a smaller image)")
    except OSError as e:
        fail(f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}".lstrip(": "))
    except RuntimeError as e:  # WeightsError, device errors
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


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


@main.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-q", "--quality", type=click.IntRange(1, 6), default=3, show_default=True,
              help="Quality level: 1 = smallest file (~0.05 bpp) .. 6 = best (~1 bpp).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output .cgdm file [default: INPUT with extension .cgdm].")
@click.option("--base-only", is_flag=True,
              help="Write a file without the diffusion stage (smaller, fast to decode, less detail).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Noise seed the decoder's diffusion starts from (the first one tried when "
                   "searching seeds).")
@click.option("--steps", type=click.IntRange(1, 255), default=None,
              help="DDIM steps the decoder should run [default: the weights' setting, 9].")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default="default",
              show_default=True,
              help="How hard the encoder searches for the syntax and seed it writes: fast = one "
                   "pass of the syntax encoder; default = a short per-image fine-tuning and 2 seeds "
                   "(~1 min for 768x512 on a 2-core CPU); max = the paper's 250 iterations.")
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
@FORCE
@DEVICE
@QUIET
def encode(input: Path, quality: int, output: Path | None, base_only: bool, seed: int,
           steps: int | None, effort: str, finetune_iters: int | None, seeds: int | None,
           no_finetune: bool, base: str | None, av1_quality: int | None, force: bool, device: str,
           quiet: bool, metadata: str = "all", strip: bool = False) -> None:
    """Compress an image (PNG, JPEG, WebP, TIFF, ... anything Pillow reads) to .cgdm."""
    out = output or input.with_suffix(".cgdm")
    report = Reporter(quiet)

    def job() -> None:
        check_output(out, force, (input,))
        from . import imageio

        img = imageio.load(input, limits())
        img.metadata = imageio.select_metadata(img.metadata, "none" if strip else metadata)
        for note in img.notes:
            report(f"note: {note}")
        if av1_quality is not None and base == "hyperprior":
            raise click.UsageError("--av1-quality needs the AV1 base")
        report("starting the codec (importing torch and CompressAI)")
        from .pipeline import encode_image

        data = encode_image(img, quality, diffusion=False if base_only else None, seed=seed,
                            steps=steps, effort=effort, finetune_iters=finetune_iters, seeds=seeds,
                            finetune=not no_finetune, device=device, progress=report,
                            step_progress=report.step, base=base, fine=av1_quality)
        write_atomic(out, data, overwrite=force)
        bpp = 8 * len(data) / (img.width * img.height)
        report(f"wrote {out} ({len(data)} bytes, {bpp:.4f} bpp)")

    run_guarded(job)


@main.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output image; the format follows the extension (.png, .webp, .jpg, ...) "
                   "[default: INPUT with extension .decoded.png].")
@click.option("--base-only", is_flag=True,
              help="Skip the diffusion stage: the base codec's reconstruction (a fast preview).")
@click.option("--steps", type=click.IntRange(1, 255), default=None,
              help="Override the file's number of DDIM steps (fewer is faster).")
@click.option("--strip", is_flag=True, help="Write no ICC profile, EXIF or XMP into the output.")
@FORCE
@DEVICE
@QUIET
def decode(input: Path, output: Path | None, base_only: bool, steps: int | None, force: bool,
           device: str, quiet: bool, strip: bool = False) -> None:
    """Decode a .cgdm file to an image."""
    out = output or input.with_suffix(".decoded.png")
    report = Reporter(quiet)

    def job() -> None:
        check_output(out, force, (input,))
        f = read_file(input, limits())
        from . import imageio

        if out.suffix.lower() not in _image_extensions():
            raise imageio.ImageError(f"{out}: unknown output format '{out.suffix or '(none)'}'; use e.g. .png")
        report("starting the codec (importing torch and CompressAI)")
        from .pipeline import decode_file

        rgb = decode_file(f, base_only=base_only, steps=steps, device=device, progress=report,
                          step_progress=report.step)
        alpha = imageio.decode_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
        im = imageio.to_pil(rgb, f.colour_mode, alpha, None if strip else f.metadata)
        for note in imageio.save(im, out, overwrite=force):
            report(f"note: {note}")
        report(f"wrote {out} ({f.width}x{f.height})")

    run_guarded(job)


def _image_extensions() -> set[str]:
    from PIL import Image

    Image.init()
    return set(Image.EXTENSION)


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
              help="Also run Pillow's JPEG, WebP and AVIF over quality sweeps.")
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
          anchors: bool, ablations: tuple[str, ...], effort: str | None, resume: bool,
          keep_files: bool, threads: int | None, device: str, quiet: bool) -> None:
    """Rate-distortion-perception evaluation of every image in FOLDER, with anchors and plots."""
    cfg_args = dict(folder=folder, levels=levels, outdir=outdir, downscale=downscale, limit=limit,
                    anchors=anchors, ablations=ablations, effort=effort, device=device, threads=threads)

    def job() -> None:
        if not folder.is_dir():
            raise OSError(2, "not a folder", str(folder))
        from .evaluation.runner import EvalConfig, run_eval

        cfg = EvalConfig(images=folder, outdir=outdir, levels=levels, downscale=downscale, limit=limit,
                         anchors=anchors, ablations=tuple(a for a in ablations if a != "none"),
                         effort=effort, device=device, resume=resume, keep_files=keep_files,
                         quiet=quiet, threads=threads, command=_eval_command(cfg_args))
        result = run_eval(cfg)
        if not quiet:
            click.echo(f"wrote {outdir}/results.md, summary.json, results.csv, results.jsonl, rd.png "
                       f"({result['images_complete']} images)", err=True)

    run_guarded(job)


if __name__ == "__main__":
    main()
