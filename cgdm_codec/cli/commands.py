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
from ..api import check_environment
from ..errors import ConfigError
from ..options import ENCODE_OPTION, MAX_PIXELS, MAX_SIDE, QUIET, Option, RunSettings
from ..options import DecodeSettings, EncodeSettings, command_line, surface_options
from ..container import Limits, parse, read_file
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
    for setting in (MAX_PIXELS, MAX_SIDE):
        assert setting.low is not None and setting.high is not None
        command = click.option(setting.flag_name, type=click.IntRange(int(setting.low), int(setting.high)),
                               default=None, metavar=setting.metavar, expose_value=False, callback=_set_limit,
                               is_eager=False, help=setting.help)(command)
    return command


def option_from(setting: Option, **overrides: Any) -> Callable:
    """The click option of a setting (a field of ``options.EncodeSettings``/``DecodeSettings``)."""
    names = [n for n in (setting.short, setting.flag_name) if n]
    kwargs: dict[str, Any] = dict(help=setting.help, default=setting.default, metavar=setting.metavar)
    if setting.count:
        kwargs.update(count=True, metavar=None)
    elif setting.flag:
        # a negated flag (--no-finetune) stores False into a setting that defaults to True
        kwargs.update(is_flag=True, flag_value=not setting.default, metavar=None)
    elif setting.choices:
        kwargs.update(type=click.Choice(list(setting.choices)), show_default=setting.default is not None)
    elif setting.validate is not None:
        kwargs.update(show_default=setting.default is not None)
    else:
        number = click.FloatRange if setting.real else click.IntRange
        kwargs.update(type=number(setting.low, setting.high, min_open=setting.open_low),
                      show_default=setting.default is not None)
    kwargs.update(overrides)
    return click.option(*names, setting.name, **kwargs)


def settings_options(cls: type[RunSettings], **overrides: dict[str, Any]) -> Callable:
    """Every field of a settings class that the command line offers, in the class's order
    (the size limits through ``LIMITS``, which the group shares); ``overrides`` by name."""
    def apply(command: Callable) -> Callable:
        command = LIMITS(command)
        for setting in reversed(surface_options(cls, "cli")):
            if setting not in (MAX_SIDE, MAX_PIXELS):
                command = option_from(setting, **overrides.get(setting.name, {}))(command)
        return command
    return apply


def _no_folders(ctx: click.Context, param: click.Parameter, inputs: tuple[Path, ...]) -> tuple[Path, ...]:
    """A folder given as an input is a usage error of one line, as every other one, not
    click's three-line "Invalid value"."""
    for p in inputs:
        if not is_stdio(p) and p.is_dir():
            raise ConfigError(f"{p}: is a folder, not a file (give the files in it, e.g. {p}/*)")
    return inputs


INPUTS = click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", callback=_no_folders,
                        type=click.Path(allow_dash=True, path_type=Path))
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
@click.option("-o", "--output", type=click.Path(allow_dash=True), default=None,
              help=f"Output .cgdm file, {OUTPUT_HELP} [default: INPUT with extension .cgdm; standard "
                   "output for '-' as INPUT]. An image extension (.png, .jpg...) is refused.")
@settings_options(EncodeSettings)
def encode(inputs: tuple[Path, ...], output: str | None, **settings: Any) -> None:
    """Compress images (PNG, JPEG, WebP, TIFF, ... anything Pillow reads) to .cgdm.

    \b
      cgdm encode photo.jpg                 -> photo.cgdm
      cgdm encode photo.jpg -o coded/       -> coded/photo.cgdm (folder created if missing)
      cgdm encode *.png -o coded/ -j 2      -> coded/NAME.cgdm, two at a time
      cgdm encode photo.jpg --size 20000    -> the best file of at most 20000 bytes
      cgdm encode scan.png --lossless       -> decodes bit for bit to scan.png's pixels
      cat photo.png | cgdm encode - > photo.cgdm
    """
    chosen = EncodeSettings.of(settings, command_line)  # contradicting options: one line, exit 2
    plan = plan_outputs(inputs, output, lambda p: p.with_suffix(".cgdm"), lambda p: p.stem + ".cgdm")
    for src, out in zip(inputs, plan.outputs):
        check_encode_output(src, out)
    work = [EncodeJob(src, out, chosen, limits()) for src, out in zip(inputs, plan.outputs)]
    run_all(work, encode_one, encode_job, plan.folder, chosen.jobs, chosen.quiet, "encoded")


def _pillow_format(value: str | None) -> str | None:
    """--format as Pillow's format name (None for an unknown one, or none given)."""
    return None if value is None else image_format("." + value.lower().lstrip("."))


def _format_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--format as given, once Pillow is known to write it; an unknown one is a usage error."""
    if value is not None and _pillow_format(value) is None:
        raise click.BadParameter(f"'{value}' is not an image format Pillow writes (png, webp, jpg, "
                                 "tiff, ...)", ctx, param)
    return value


@main.command()
@INPUTS
@click.option("-o", "--output", type=click.Path(allow_dash=True), default=None,
              help=f"Output image, {OUTPUT_HELP}; the format follows the extension (.png, .webp, "
                   ".jpg, ...) [default: INPUT with extension .decoded.png; standard output for '-' "
                   "as INPUT].")
@settings_options(DecodeSettings, fmt=dict(callback=_format_option))
def decode(inputs: tuple[Path, ...], output: str | None, **settings: Any) -> None:
    """Decode .cgdm files to images.

    \b
      cgdm decode photo.cgdm                    -> photo.decoded.png
      cgdm decode photo.cgdm -o previews/       -> previews/photo.png
      cgdm decode *.cgdm -o out/ --format webp  -> out/NAME.webp
      cgdm decode photo.cgdm -o - > photo.png
    """
    from ..imageio import QUALITY_FORMATS

    chosen = DecodeSettings.of(settings, command_line)
    fmt = _pillow_format(chosen.fmt)
    ext = "." + ("png" if fmt is None else _extension(fmt))
    plan = plan_outputs(inputs, output, lambda p: p.with_suffix(".decoded" + ext), lambda p: p.stem + ext)

    formats = run_guarded(lambda: [decode_format(out, fmt) for out in plan.outputs])
    if chosen.output_quality is not None:
        for out, fm in zip(plan.outputs, formats):
            if fm not in QUALITY_FORMATS:
                raise click.UsageError(f"--output-quality applies to JPEG, WebP and AVIF outputs; "
                                       f"{'standard output' if str(out) == '-' else out} is {fm}")
    work = [DecodeJob(src, out, fm, chosen, limits()) for src, out, fm in zip(inputs, plan.outputs, formats)]
    run_all(work, decode_one, decode_job, plan.folder, chosen.jobs, chosen.quiet, "decoded")


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
        weights += (f" ({s['weights_id']}; realism network: {'yes' if s['realism'] else 'no'}"
                    f"{'; fast network: yes' if s.get('fast') else ''})")
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


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("-f", "--force", is_flag=True, help="Replace the page's files where FOLDER already has them.")
@click.option("--all-weights", is_flag=True,
              help="Also the older AV1 weights generations (6.2 MB each), so that the page decodes their files in full.")
@option_from(QUIET)
def web(folder: Path, force: bool, all_weights: bool, quiet: int) -> None:
    """Write the browser viewer of .cgdm files into FOLDER (created if missing).

    \b
      cgdm web viewer/ && xdg-open viewer/index.html

    A static page (classic scripts, ONNX Runtime Web's WebAssembly and the newest AV1
    weights, about 11.5 MB; no download, no server needed; it opens from disk): open a
    .cgdm file by picker or drag-and-drop, see its base-only decode (the AV1 picture,
    decoded by the browser) at once, then its full decode (the diffusion stage, run in the
    browser at realism 0), its info, save a PNG, compare with the original. Served with
    the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy:
    require-corp it runs on several threads; from disk on one.
    """
    from ..webpage import write_page

    written = run_guarded(write_page, folder, force, all_weights)
    if not quiet:
        click.echo(f"wrote {folder}/ ({len(written)} files); open {folder / 'index.html'} in a browser",
                   err=True)


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
              type=click.Choice(["base-only", "no-finetune", "realism", "realism-map", "none"]),
              help="Extra cgdm curves (repeatable; 'none' for none): realism = the same file at "
                   "--realism 1, realism-map = encoded --texture-map, decoded at --realism 1.")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default=None,
              help="Encoder effort [default: fast, where the encoder has efforts].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip (image, codec, setting) rows already in OUT; --no-resume starts again.")
@click.option("--keep-files", is_flag=True, help="Keep every coded file under OUT/files.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads for the codec [default: torch's]; metrics always use one.")
@option_from(ENCODE_OPTION["device"])
@option_from(QUIET)
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
        try:  # the evaluation is the lab's (lab/, a second distribution): never in the codec's wheel
            from cgdm_lab.evaluation.runner import EvalConfig, run_eval
        except ModuleNotFoundError as exc:
            if exc.name != "cgdm_lab":
                raise
            from ..errors import MissingDependency
            raise MissingDependency("cgdm eval needs cgdm-lab, which is not installed: "
                                    "pip install -e ./lab (from a cgdm-codec checkout)") from None

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


__all__ = ["main", "encode", "decode", "info", "web", "eval_", "limits"]
