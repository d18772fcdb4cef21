"""The ``cgdm`` commands: options and their checks; the work is in ``jobs``.

Only click and the pure-Python container are imported at start-up, so ``cgdm --help`` and
``cgdm info`` answer instantly; torch and CompressAI load inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..api import ENCODE_OPTION, EncodeOption, check_environment
from ..api import LOSSLESS_CONFLICTS as LOSSLESS_CONFLICTS_API
from ..errors import ConfigError
from ..container import ENV_MAX_PIXELS, ENV_MAX_SIDE, MAX_DIM, MAX_PIXELS, Limits, parse, read_file
from ..imageio import PNG_LEVEL  # imageio loads Pillow and numpy only inside its functions
from .failures import GuardedGroup, describe_error, echo_err, run_guarded
from .jobs import DecodeJob, EncodeJob, decode_job, decode_one, encode_job, encode_one, run_all
from .outputs import (check_encode_output, check_input, decode_format, echo_stdout, image_format, is_stdio,
                      plan_outputs, read_stdin)


def limits() -> Limits:
    """The size limits the options (or their environment variables) set."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Limits) if ctx is not None else None
    return found if found is not None else Limits.from_env()


def _set_limit(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """A limit given to the group or to a command (``cgdm encode --max-side 4000``) lowers
    the limits of this command's context, over the environment's."""
    if value is not None:
        assert param.name is not None
        ctx.obj = replace(ctx.find_object(Limits) or Limits.from_env(), **{param.name: value})


def LIMITS(command: Callable) -> Callable:
    """--max-side and --max-pixels, before the command name or after it, as every option."""
    for name, var, top, metavar, what in (
            ("--max-pixels", ENV_MAX_PIXELS, MAX_PIXELS, "N", "with more pixels than N; bounds memory"),
            ("--max-side", ENV_MAX_SIDE, MAX_DIM, "PX", "wider or taller than PX")):
        command = click.option(name, type=click.IntRange(1, top), default=None, metavar=metavar,
                               expose_value=False, callback=_set_limit, is_eager=False,
                               help=f"Refuse images (input or .cgdm) {what} [default: {top}, or env "
                                    f"{var}].")(command)
    return command


def option_from(setting: EncodeOption, *names: str, **overrides: Any) -> Callable:
    """The click option of an encoder setting described in ``api.ENCODE_OPTIONS``."""
    flag = setting.cli or "--" + setting.name.replace("_", "-")
    kwargs: dict[str, Any] = dict(help=setting.help, default=setting.default)
    if setting.flag:
        # a negated flag (--no-finetune) stores False into a setting that defaults to True
        kwargs.update(is_flag=True, flag_value=not setting.default)
    elif setting.choices:
        kwargs.update(type=click.Choice(list(setting.choices)), show_default=setting.default is not None)
    else:
        kwargs.update(type=click.IntRange(setting.low, setting.high),
                      show_default=setting.default is not None)
    kwargs.update(overrides)
    return click.option(*names, flag, setting.name, **kwargs)


def encode_option(name: str, *names: str, **overrides: Any) -> Callable:
    return option_from(ENCODE_OPTION[name], *names, **overrides)


DEVICE = encode_option("device")
RUNTIME = encode_option("runtime")
THREADS = encode_option("threads")
QUIET = click.option("--quiet", "-Q", count=True,
                     help="No progress messages on stderr; notes of what an output loses (frames, "
                          "alpha, metadata) still show. -QQ: not those either.")
FORCE = click.option("--force", "-f", is_flag=True,
                     help="Overwrite the output file if it exists (never the input).")
def _no_folders(ctx: click.Context, param: click.Parameter, inputs: tuple[Path, ...]) -> tuple[Path, ...]:
    """A folder given as an input is a usage error of one line, as every other one, not
    click's three-line "Invalid value"."""
    for p in inputs:
        if not is_stdio(p) and p.is_dir():
            raise ConfigError(f"{p}: is a folder, not a file (give the files in it, e.g. {p}/*)")
    return inputs


INPUTS = click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", callback=_no_folders,
                        type=click.Path(allow_dash=True, path_type=Path))
JOBS = click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
                    help="Files coded at once, each in its own process [default: one per core, "
                         "as far as free memory allows].")


def CODING(command: Callable) -> Callable:
    """The options every coding command shares: jobs, force, where and how the networks run,
    the size limits."""
    for option in (LIMITS, QUIET, THREADS, RUNTIME, DEVICE, FORCE, JOBS):
        command = option(command)
    return command


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cgdm")
@LIMITS
@click.pass_context
def main(ctx: click.Context) -> None:
    """cgdm: a perceptual image codec (AV1 or a learned base codec + a diffusion post-processor).

    \b
      cgdm encode img.png -q 3 -o img.cgdm
      cgdm decode img.cgdm -o out.png
      cgdm info img.cgdm

    An existing output file is never replaced without -f/--force, the input never.
    Exit status: 0 done, 1 an error, 2 a usage error, 130 interrupted, 141 standard output
    closed by its reader (as a shell reports a filter ended by SIGPIPE).
    """
    check_environment()  # CGDM_BASE, CGDM_RUNTIME, ...: a bad value is a usage error, one line
    if ctx.find_object(Limits) is None:
        ctx.obj = Limits.from_env()


OUTPUT_HELP = ("'-' (standard output), a folder (a name ending in '/', or an existing folder; "
               "created if missing; the only choice for several inputs) or a character device "
               "such as /dev/null")


@main.command()
@INPUTS
@encode_option("quality", "-q", default=None, show_default=False,
               help="Quality level: 1 = smallest file (~0.06 bpp) .. 6 = best (~1 bpp)  [default: 3].")
@click.option("-o", "--output", type=click.Path(allow_dash=True), default=None,
              help=f"Output .cgdm file, {OUTPUT_HELP} [default: INPUT with extension .cgdm; standard "
                   "output for '-' as INPUT]. An image extension (.png, .jpg...) is refused.")
@click.option("--size", "target_size", type=click.IntRange(1, None), default=None, metavar="BYTES",
              help="Choose the quality whose file is the largest not over BYTES (instead of -q).")
@click.option("--bpp", "target_bpp", type=click.FloatRange(0, None, min_open=True), default=None,
              metavar="X", help="As --size, for a target of X bits per pixel.")
@encode_option("base_only")
@encode_option("lossless")
@click.option("--diffusion", "always_diffusion", is_flag=True,
              help="Always write the diffusion stage, even where the encoder's objective scores "
                   "the base-only decode better.")
@encode_option("seed")
@encode_option("steps", default=None)
@encode_option("effort")
@encode_option("finetune_iters")
@encode_option("seeds")
@encode_option("finetune")
@encode_option("base")
@encode_option("av1_quality", help="AV1 base: Pillow's AVIF quality 0..100 instead of -q (a "
                                   "fine-grained rate).")
@click.option("--metadata", default="all", show_default=True, metavar="all|none|icc,exif,xmp",
              help="Which of the input's ICC profile, EXIF and XMP the file carries.")
@click.option("--strip", is_flag=True, help="Carry no metadata (same as --metadata none).")
@CODING
def encode(inputs: tuple[Path, ...], quality: int | None, output: str | None,
           target_size: int | None, target_bpp: float | None, base_only: bool, lossless: bool,
           always_diffusion: bool,
           seed: int, steps: int | None, effort: str, finetune_iters: int | None, seeds: int | None,
           finetune: bool, base: str | None, av1_quality: int | None, metadata: str, strip: bool,
           jobs: int | None, force: bool, device: str, runtime: str, threads: int | None,
           quiet: int) -> None:
    """Compress images (PNG, JPEG, WebP, TIFF, ... anything Pillow reads) to .cgdm.

    \b
      cgdm encode photo.jpg                 -> photo.cgdm
      cgdm encode photo.jpg -o coded/       -> coded/photo.cgdm (folder created if missing)
      cgdm encode *.png -o coded/ -j 2      -> coded/NAME.cgdm, two at a time
      cgdm encode photo.jpg --size 20000    -> the best file of at most 20000 bytes
      cgdm encode scan.png --lossless       -> decodes bit for bit to scan.png's pixels
      cat photo.png | cgdm encode - > photo.cgdm
    """
    if lossless:
        check_lossless_options()
    given = [name for name, v in (("-q", quality), ("--size", target_size), ("--bpp", target_bpp),
                                  ("--av1-quality", av1_quality)) if v is not None]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} each choose the quality: give one")
    if base_only and always_diffusion:
        raise click.UsageError("--base-only and --diffusion contradict each other: give one")
    from ..base.registry import backend

    if av1_quality is not None and base is not None and backend(base).fine_range is None:
        raise click.UsageError("--av1-quality needs the AV1 base")
    keep = "none" if strip else metadata
    from ..imageio import select_metadata

    run_guarded(select_metadata, None, keep)  # a bad choice: one line, exit 2
    plan = plan_outputs(inputs, output, lambda p: p.with_suffix(".cgdm"), lambda p: p.stem + ".cgdm")
    for src, out in zip(inputs, plan.outputs):
        check_encode_output(src, out)
    options = dict(diffusion=False if base_only else (True if always_diffusion else None), seed=seed,
                   steps=steps, effort=effort, finetune_iters=finetune_iters, seeds=seeds,
                   finetune=finetune, device=device, base=base, fine=av1_quality, runtime=runtime,
                   threads=threads, lossless=lossless)
    work = [EncodeJob(src, out, quality or ENCODE_OPTION["quality"].default, limits(), force,
                      target_size, target_bpp, keep, options)
            for src, out in zip(inputs, plan.outputs)]
    run_all(work, encode_one, encode_job, plan.folder, jobs, quiet, "encoded")


#: The encode options that contradict --lossless, by parameter name: the encoder settings
#: ``api.LOSSLESS_CONFLICTS`` names, and the CLI's own rate targets and --diffusion.
LOSSLESS_CONFLICTS = (*LOSSLESS_CONFLICTS_API, "target_size", "target_bpp", "always_diffusion")


def check_lossless_options() -> None:
    """A usage error (one line, exit 2, as decode's ``check_base_only``) naming the options
    given on the command line that --lossless contradicts: each sets a rate, a base codec or
    the diffusion stage a lossless file lacks."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    flags = {p.name: max(p.opts, key=len) if p.name != "quality" else "-q" for p in ctx.command.params}
    given = [flags[n] for n in LOSSLESS_CONFLICTS if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
    if given:
        raise ConfigError(f"--lossless codes the exact pixels without a diffusion stage: "
                          f"{', '.join(given)} cannot be given with it")


def _format_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--format as Pillow's format name; an unknown one is a usage error."""
    if value is None:
        return None
    fmt = image_format("." + value.lower().lstrip("."))
    if fmt is None:
        raise click.BadParameter(f"'{value}' is not an image format Pillow writes (png, webp, jpg, "
                                 "tiff, ...)", ctx, param)
    return fmt


@main.command()
@INPUTS
@click.option("-o", "--output", type=click.Path(allow_dash=True), default=None,
              help=f"Output image, {OUTPUT_HELP}; the format follows the extension (.png, .webp, "
                   ".jpg, ...) [default: INPUT with extension .decoded.png; standard output for '-' "
                   "as INPUT].")
@click.option("--format", "fmt", default=None, metavar="EXT", callback=_format_option,
              help="Output format for standard output, devices and folders (png, webp, jpg, tiff, "
                   "...) [default: png]; with -o NAME.EXT it must agree with the extension.")
@click.option("--base-only", is_flag=True,
              help="Skip the diffusion stage: the base codec's reconstruction (a fast preview); "
                   "not with --steps or --realism, which set that stage.")
@click.option("--steps", type=click.IntRange(1, 255), default=None,
              help="Override the file's number of sampler steps (fewer is faster).")
@click.option("--realism", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="0..1",
              help="The decode-time dial of the same file: 0 = the fidelity decode; above 0 the "
                   "realism network of the file's weights runs and the texture energy the decode "
                   "lacks is put back, by strengthening the fine detail it kept and seeded grain "
                   "where it kept none (sharper and more textured, less faithful to the exact "
                   "pixels: 1 costs ~1.1-1.3 dB PSNR at levels 1-3, 0.5 ~0.5-0.7 dB for nearly the same realism).")
@click.option("--strip", is_flag=True, help="Write no ICC profile, EXIF or XMP into the output.")
@click.option("--png-level", type=click.IntRange(0, 9), default=PNG_LEVEL, show_default=True,
              help="zlib level of PNG outputs (9: smallest file, several times slower to write).")
@click.option("--output-quality", type=click.IntRange(0, 100), default=None, metavar="0..100",
              help="Quality of JPEG, WebP and AVIF outputs [default: Pillow's: 75 for JPEG and "
                   "AVIF, 80 for WebP].")
@CODING
def decode(inputs: tuple[Path, ...], output: str | None, fmt: str | None, base_only: bool,
           steps: int | None, realism: float, strip: bool, png_level: int, output_quality: int | None,
           jobs: int | None, force: bool, device: str, runtime: str, threads: int | None,
           quiet: int) -> None:
    """Decode .cgdm files to images.

    \b
      cgdm decode photo.cgdm                    -> photo.decoded.png
      cgdm decode photo.cgdm -o previews/       -> previews/photo.png
      cgdm decode *.cgdm -o out/ --format webp  -> out/NAME.webp
      cgdm decode photo.cgdm -o - > photo.png
    """
    from ..imageio import QUALITY_FORMATS

    check_base_only(base_only, steps, realism)
    ext = "." + ("png" if fmt is None else _extension(fmt))
    plan = plan_outputs(inputs, output, lambda p: p.with_suffix(".decoded" + ext), lambda p: p.stem + ext)

    formats = run_guarded(lambda: [decode_format(out, fmt) for out in plan.outputs])
    if output_quality is not None:
        for out, fm in zip(plan.outputs, formats):
            if fm not in QUALITY_FORMATS:
                raise click.UsageError(f"--output-quality applies to JPEG, WebP and AVIF outputs; "
                                       f"{'standard output' if str(out) == '-' else out} is {fm}")
    work = [DecodeJob(src, out, fm, limits(), force, base_only, steps, device, strip, png_level,
                      output_quality, realism, runtime, threads)
            for src, out, fm in zip(inputs, plan.outputs, formats)]
    run_all(work, decode_one, decode_job, plan.folder, jobs, quiet, "decoded")


def check_base_only(base_only: bool, steps: int | None, realism: float) -> None:
    """--steps and --realism set the diffusion stage that --base-only skips: together they
    contradict each other (a usage error), rather than being silently ignored."""
    if not base_only:
        return
    for name, given in (("--realism", realism > 0), ("--steps", steps is not None)):
        if given:
            raise ConfigError(f"{name} sets the diffusion stage, which --base-only skips: give one")


def _extension(fmt: str) -> str:
    """The usual extension of a Pillow format (JPEG -> jpg, WEBP -> webp)."""
    from PIL import Image

    exts = [e for e, f in Image.registered_extensions().items() if f == fmt]
    preferred = {"JPEG": ".jpg", "TIFF": ".tiff", "JPEG2000": ".jp2"}.get(fmt)
    return (preferred or (exts[0] if exts else "." + fmt.lower())).lstrip(".")


@main.command()
@INPUTS
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (a list of them for several inputs).")
def info(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Describe .cgdm files without decoding them ('-' reads standard input).

    One block per file, as gzip -l lists several; a file that cannot be read is one error
    line and the others are still described (exit status 1). No size limit applies: no
    pixel is decoded.
    """
    if sum(is_stdio(p) for p in inputs) > 1:
        raise ConfigError("'-' (standard input) can be read once")
    run_guarded(_info_all, inputs, as_json)


def _info_all(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Describe each input (text as it goes, JSON at the end); the worst exit code last."""
    found, code = [], 0
    for src in inputs:
        try:
            described = _info_of(src)
        except Exception as e:
            said = describe_error(e)
            if said is None:
                raise
            name = _name_of(src)
            echo_err(f"cgdm: error: {said[0] if name in said[0] else f'{name}: {said[0]}'}")
            code = max(code, said[1])
            continue
        found.append(described)
        if not as_json:
            echo_stdout(("\n" if len(found) > 1 else "") + _info_text(_name_of(src), described))
    if as_json and found:
        echo_stdout(json.dumps(found[0] if len(inputs) == 1 else found))
    if code:
        sys.exit(code)


def _name_of(src: Path) -> str:
    return "standard input" if is_stdio(src) else str(src)


def _info_of(src: Path) -> dict:
    """The ``info`` dict of a file or of standard input, under the format's own limits."""
    from ..api import describe

    check_input(src)
    if is_stdio(src):
        data = read_stdin()
        return describe(parse(data, Limits()), len(data))
    return describe(read_file(src, Limits()), src.stat().st_size)


def _info_text(name: str, s: dict) -> str:
    """The text block of one file."""
    weights = s["weights"] or f"{s['weights_id']} (not installed here)"
    if s["weights"] not in (None, "none"):
        weights += f" ({s['weights_id']}; realism network: {'yes' if s['realism'] else 'no'})"
    return "\n".join([
        f"{name}: cgdm format {s['format_version']}",
        f"  image      {s['width']}x{s['height']} {s['colour_mode']}",
        f"  quality    {'lossless (exact pixels)' if s.get('lossless') else s['quality']}",
        f"  size       {s['bytes']} bytes, {s['bpp']} bpp ({s['framing_bytes']} bytes of framing)",
        f"  base codec {s['base_codec']}, weights {weights}",
        (f"  diffusion  {s['steps']} DDIM step{'' if s['steps'] == 1 else 's'}, seed {s['seed']}"
         if s.get("diffusion")
         else f"  diffusion  none (base codec only), seed {s['seed']}"),
        "  sections   " + ", ".join(f"{k} {v} B" for k, v in s["sections"].items()),
        "  metadata   " + (", ".join(f"{k} {v} B" for k, v in s["metadata"].items()) or "none"),
    ])


#: What ``cgdm eval`` imports beyond the codec: the ``eval`` extra (pyproject.toml).
EVAL_MODULES = ("torch", "piq", "scipy", "matplotlib")


def require_extra(what: str, extra: str, modules: tuple[str, ...]) -> None:
    """Refuse before any work, in one line naming the extra to install, when a module of it
    is missing: a light install running ``cgdm eval`` used to end in a traceback."""
    import importlib.util

    from ..errors import MissingDependency

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                                f"not installed: pip install 'cgdm-codec[{extra}]'")


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
    for name in a.get("anchor_names") or ():
        words += ["--anchor", name]
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
@click.option("--anchor", "anchor_names", multiple=True, metavar="NAME",
              help="Run only this anchor (repeatable): jpeg, webp, avif (or avif-sN at --avif-speed N), "
                   "avif-s2, jxl [default: all].")
@click.option("--avif-speed", type=click.IntRange(0, 10), default=None,
              help="libaom speed of the first AVIF anchor [default: 6, libavif's own default; "
                   "cgdm's default effort uses 3, or 4 above 4.2 MP].")
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
          anchors: bool, anchor_names: tuple[str, ...], avif_speed: int | None, ablations: tuple[str, ...],
          effort: str | None, resume: bool, keep_files: bool, threads: int | None, device: str, quiet: int) -> None:
    """Rate-distortion-perception evaluation of every image in FOLDER, with anchors and plots."""
    cfg_args = dict(folder=folder, levels=levels, outdir=outdir, downscale=downscale, limit=limit,
                    anchors=anchors, avif_speed=avif_speed, ablations=ablations, effort=effort,
                    device=device, threads=threads, anchor_names=anchor_names)

    def job() -> None:
        if not folder.is_dir():
            raise OSError(2, "not a folder", str(folder))
        require_extra("cgdm eval", "eval", EVAL_MODULES)
        from ..evaluation.runner import EvalConfig, run_eval

        cfg = EvalConfig(images=folder, outdir=outdir, levels=levels, downscale=downscale, limit=limit,
                         anchors=anchors, ablations=tuple(a for a in ablations if a != "none"),
                         effort=effort, device=device, resume=resume, keep_files=keep_files,
                         quiet=quiet, threads=threads, command=_eval_command(cfg_args), anchor_names=anchor_names,
                         **({} if avif_speed is None else {"avif_speed": avif_speed}))
        result = run_eval(cfg)
        if not quiet:
            click.echo(f"wrote {outdir}/results.md, summary.json, results.csv, results.jsonl, rd.png "
                       f"({result['images_complete']} images)", err=True)

    run_guarded(job)


__all__ = ["main", "encode", "decode", "info", "eval_", "limits"]
