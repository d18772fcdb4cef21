"""Encoding or decoding a collection on a Dask cluster, for libraries that outgrow one machine.

``cgdm encode A B ... -o DIR -j N`` spreads files over the cores of one machine; this module
spreads them over the workers of a Dask cluster -- a ``LocalCluster`` it starts, or one the
caller runs (a scheduler address or a ``distributed.Client``):

    python -m cgdm_codec.distributed encode photos/ -o coded/ --scheduler tcp://host:8786
    python -m cgdm_codec.distributed decode coded/ -o previews/ --workers 4 --base-only

Each file is one task that runs exactly what ``cgdm encode``/``cgdm decode`` runs for one
file (``cli.encode_job``/``cli.decode_job``): the same limits, metadata handling and atomic
output (a temporary file renamed into place, so no output is ever half-written), and an
existing output is not replaced unless ``force``. A failure is a value -- one
:class:`FileResult` per input with the one-line error -- never an exception that stops the
other files. The weights load once per worker process (:func:`worker_bundle`). The output
folder must be visible to every worker under the same path (a shared file system).

Dask is optional: it is imported only inside :func:`run` and the command, so the rest of
cgdm works without it (``pip install 'cgdm-codec[dask]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .atomic import write_atomic
from .container import Limits
from .errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

    from .options import DecodeSettings, EncodeSettings, Option, Spell

    from .cli import DecodeJob, EncodeJob
    from .generations import Bundle

INSTALL_HINT = "pip install 'cgdm-codec[dask]'"
COMMANDS = ("encode", "decode")


@dataclass(frozen=True)
class FileResult:
    """What became of one input: ``ok`` with the output's size, or the one-line ``error``."""

    path: str
    output: str
    ok: bool
    error: str | None = None
    bytes: int = 0  # size of the written output; 0 when nothing was written
    seconds: float = 0.0  # time in the worker
    worker: str = ""  # which worker ran it (its address), "" when it never ran


class DaskMissingError(ImportError):
    """Dask is not installed: one line that says how to install it."""

    def __init__(self) -> None:
        super().__init__(f"the distributed mode needs Dask; install it with: {INSTALL_HINT}")


def _dask() -> Any:
    """The ``distributed`` package, imported only when a cluster is actually used."""
    try:
        import distributed
    except ImportError:
        raise DaskMissingError() from None
    return distributed


# ------------------------------------------------------------------ worker side

_LOCK = threading.Lock()
_BUNDLES: dict[tuple[str, bool], "Bundle"] = {}
_TASKS = 0  # tasks this process has run: with loaded(), shows the load was not per task


def worker_bundle(base: str, diffusion: bool) -> "Bundle":
    """The base codec and decoder manifests for ``base``, loaded once per worker process.

    The pipeline caches everything it loads per process (networks included, on first use);
    this lock makes the first load happen once even when a worker runs tasks in several
    threads, and :func:`loaded` shows what a worker holds.
    """
    from .generations import load_bundle

    with _LOCK:
        key = (base, diffusion)
        if key not in _BUNDLES:
            _BUNDLES[key] = load_bundle(base, diffusion=diffusion)
        return _BUNDLES[key]


def loaded() -> dict[str, Any]:
    """What this worker process has loaded and run: {"weights": [(base, diffusion), ...],
    "tasks": N} (for tests and monitoring: ``client.run(cgdm_codec.distributed.loaded)``)."""
    with _LOCK:
        return {"weights": sorted(_BUNDLES), "tasks": _TASKS}


def _count_task() -> None:
    global _TASKS
    with _LOCK:
        _TASKS += 1


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not inside a Dask worker
        return f"pid {os.getpid()}"


def _result(job: Any, run_one: Callable[[Any], Any], start: float) -> FileResult:
    _count_task()
    outcome = run_one(job)
    out = Path(job.out)
    size = out.stat().st_size if outcome.ok and out.is_file() else 0
    return FileResult(str(job.src), str(out), outcome.ok, outcome.error, size,
                      round(time.perf_counter() - start, 4), _worker_name())


def encode_task(job: "EncodeJob") -> FileResult:
    """One ``cgdm encode`` of one file on a worker; every expected failure becomes the result."""
    from . import cli
    from .base.registry import backend
    from .generations import default_base

    start = time.perf_counter()
    try:
        base = backend(job.settings.base or default_base()).name
        worker_bundle(base, job.settings.diffusion_stage is not False)
    except Exception:  # reported with the file, by the same code path, below
        pass
    return _result(job, cli.encode_job, start)


def decode_task(job: "DecodeJob") -> FileResult:
    """One ``cgdm decode`` of one file on a worker; every expected failure becomes the result."""
    from . import cli
    from .base.registry import backend
    from .container import read_file

    start = time.perf_counter()
    try:
        f = read_file(job.src, job.limits)  # small next to the decode; says which weights
        worker_bundle(backend(f.base_codec).name, f.diffusion and not job.settings.base_only)
    except Exception:  # an unreadable file: decode_job says why, in the usual words
        pass
    return _result(job, cli.decode_job, start)


# ------------------------------------------------------------------ client side

def expand_inputs(inputs: Sequence[str | os.PathLike[str]], command: str) -> list[Path]:
    """Files as given; a folder stands for its files (not recursive, hidden ones skipped) that
    the command takes: ``.cgdm`` for decode, any extension Pillow reads for encode."""
    if command not in COMMANDS:
        raise ConfigError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    out: list[Path] = []
    wanted: set[str] | None = None
    for item in inputs:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        if wanted is None:
            wanted = {".cgdm"} if command == "decode" else _image_extensions()
        out.extend(sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                          and q.suffix.lower() in wanted))
    return out


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def settings_of(command: str, given: dict[str, Any],
                spell: "Spell | None" = None) -> "EncodeSettings | DecodeSettings":
    """The settings object of ``command`` built from ``given`` by the rules every surface
    applies (``EncodeSettings.of`` / ``DecodeSettings.of``), refusing any the runner does not
    offer (``-j``: the cluster's workers)."""
    from .options import DecodeSettings, EncodeSettings, keyword, option_table

    if command not in COMMANDS:
        raise ConfigError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    cls = EncodeSettings if command == "encode" else DecodeSettings
    table = option_table(cls)
    for name in given:
        if name in table and not table[name].offered_on("distributed"):
            raise ConfigError(f"{(spell or keyword)(table[name])}: {table[name].not_on['distributed']}")
    return cls.of(given, spell)


def plan(command: str, inputs: Sequence[Path], outdir: Path, *, limits: Limits | None = None,
         **given: Any) -> list["EncodeJob | DecodeJob"]:
    """One job per input, each with its output in ``outdir``, from the settings of the
    command (``options.EncodeSettings`` / ``DecodeSettings`` by name: ``quality``, ``size``,
    ``realism``, ``fmt``, ``force``...); two inputs for one output are refused."""
    from . import imageio
    from .cli.jobs import DecodeJob, EncodeJob
    from .options import DecodeSettings

    settings = settings_of(command, given)
    limits = limits or Limits.from_env()
    ext, pil_format = ".cgdm", ""
    if isinstance(settings, DecodeSettings):
        ext = "." + (settings.fmt or "png").lower().lstrip(".")
        pil_format = imageio.format_for(ext)
        if settings.output_quality is not None and pil_format not in imageio.QUALITY_FORMATS:
            raise ConfigError(f"output_quality applies to JPEG, WebP and AVIF outputs, not {pil_format}")
    jobs: list[EncodeJob | DecodeJob] = []
    seen: dict[Path, Path] = {}
    for src in inputs:
        out = outdir / (src.stem + ext)
        if out in seen:
            raise ConfigError(f"{seen[out]} and {src} would both be written to {out}")
        seen[out] = src
        jobs.append(DecodeJob(src, out, pil_format, settings, limits) if isinstance(settings, DecodeSettings)
                    else EncodeJob(src, out, settings, limits))
    return jobs


def run(command: str, inputs: Sequence[str | os.PathLike[str]], outdir: str | os.PathLike[str], *,
        client: "Client | None" = None, scheduler: str | None = None, workers: int | None = None,
        processes: bool = True, limits: Limits | None = None,
        progress: Callable[[FileResult], None] | None = None, **settings: Any) -> list[FileResult]:
    """Encode or decode ``inputs`` (files or folders) into ``outdir`` on a Dask cluster.

    ``settings`` are the options of ``cgdm encode``/``cgdm decode`` by their keywords
    (``options.ENCODE_OPTIONS`` / ``DECODE_OPTIONS``: ``quality=3``, ``size=20000``,
    ``realism=0.5``, ``fmt="webp"``, ``force=True``...), checked as the other surfaces check them.
    The cluster is ``client`` if given, else the scheduler at ``scheduler``, else a
    ``LocalCluster`` of ``workers`` worker processes (threads with ``processes=False``),
    one task at a time each, which is closed afterwards. Returns one :class:`FileResult`
    per input, in input order; ``progress`` is called with each as it finishes.
    """
    if command not in COMMANDS:
        raise ConfigError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    files = expand_inputs(inputs, command)
    out = Path(outdir)
    jobs = plan(command, files, out, limits=limits, **settings)
    if not jobs:
        return []
    dd = _dask()
    out.mkdir(parents=True, exist_ok=True)
    task = encode_task if command == "encode" else decode_task
    owned: list[Any] = []  # what this call started, closed on the way out
    try:
        if client is None:
            if scheduler:
                client = dd.Client(scheduler)
            else:
                from .batch import default_jobs, threads_per_job

                n = workers or default_jobs(len(jobs))
                threads = str(threads_per_job(n))
                env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} if processes else None
                cluster = dd.LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                          dashboard_address=":0", **({"env": env} if env else {}))
                owned.append(cluster)
                client = dd.Client(cluster)
            owned.insert(0, client)
        futures = client.map(task, jobs, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[FileResult | None] = [None] * len(jobs)
        for fut in dd.as_completed(futures):
            i = index[fut.key]
            try:
                result = fut.result()
            except Exception as e:  # the worker died (killed, out of memory), not the file's fault
                job = jobs[i]
                result = FileResult(str(job.src), str(job.out), False,
                                    f"{job.src}: worker failed ({type(e).__name__}: {e})".splitlines()[0])
            results[i] = result
            if progress is not None:
                progress(result)
        return [r for r in results if r is not None]
    finally:
        for thing in owned:
            thing.close()


def encode(inputs: Sequence[str | os.PathLike[str]], outdir: str | os.PathLike[str], **kwargs: Any) -> list[FileResult]:
    """:func:`run` with ``command="encode"``."""
    return run("encode", inputs, outdir, **kwargs)


def decode(inputs: Sequence[str | os.PathLike[str]], outdir: str | os.PathLike[str], **kwargs: Any) -> list[FileResult]:
    """:func:`run` with ``command="decode"``."""
    return run("decode", inputs, outdir, **kwargs)


def summary_line(command: str, results: Sequence[FileResult], seconds: float) -> str:
    failed = sum(not r.ok for r in results)
    written = sum(r.bytes for r in results)
    workers = len({r.worker for r in results if r.worker})
    return (f"cgdm: {command}d {len(results) - failed} of {len(results)} files in {seconds:.1f}s "
            f"on {workers} worker{'s' if workers != 1 else ''} ({written} bytes written)"
            + (f"; {failed} failed" if failed else ""))


# ------------------------------------------------------------------ command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like cgdm's usage errors
        self.exit(2, f"cgdm: error: {message} (see --help)\n")


#: What the runner's command does itself with an option rather than pass it to the jobs.
OWN_OPTIONS = ("quiet", "max_side", "max_pixels")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m cgdm_codec.distributed",
                description="Encode or decode many files on a Dask cluster. Outputs go to OUTDIR, "
                            "which every worker must see under the same path. The options are those "
                            "of cgdm encode / cgdm decode.")
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, or folders (their images / .cgdm files)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local cluster of N worker processes [default: one per core, "
                            "as far as free memory allows]")
    p.add_argument("--report", metavar="FILE.json", help="also write every file's result as JSON")
    for option, help in _table_options():
        _add_option(p, option, help)
    return p


def _table_options() -> list[tuple["Option", str]]:
    """Each field of the two settings classes the runner offers, once, with its help: an
    option of one command says which; one of both with two meanings gives both."""
    from .options import DECODE_OPTION, ENCODE_OPTION, DecodeSettings, EncodeSettings, surface_options

    encode = surface_options(EncodeSettings, "distributed")
    decode = surface_options(DecodeSettings, "distributed")
    found: list[tuple[Option, str]] = []
    for option in (*encode, *(o for o in decode if o.name not in ENCODE_OPTION)):
        other = DECODE_OPTION.get(option.name)
        if option.name not in ENCODE_OPTION:
            help = f"decode: {option.help}"
        elif other is None:
            help = f"encode: {option.help}"
        elif other.help != option.help:
            help = f"encode: {option.help} decode: {other.help}"
        else:
            help = option.help
        found.append((option, help.replace("%", "%%")))
    return found


def _add_option(p: argparse.ArgumentParser, option: "Option", help: str) -> None:
    """An option as ``cgdm`` spells it; left out of the namespace unless given (so that what
    was given can be told from the defaults), its value checked by ``Option.check``."""
    names = [n for n in (option.short, option.flag_name) if n]
    common: dict[str, Any] = dict(dest=option.name, default=argparse.SUPPRESS, help=help)
    if option.count:
        p.add_argument(*names, action="count", **common)
    elif option.flag:
        p.add_argument(*names, action="store_const", const=not option.default, **common)
    else:
        p.add_argument(*names, type=_checked(option), metavar=option.metavar or _metavar(option), **common)


def _metavar(option: "Option") -> str:
    if option.choices:
        return "|".join(option.choices)
    return "N" if not option.real else "X"


def _checked(option: "Option") -> Callable[[str], Any]:
    """argparse's type for an option: the text parsed as the option's kind and checked as
    the API checks it, so that a bad value reads the same on every surface."""
    def convert(text: str) -> Any:
        try:
            value: Any = text
            if not (option.choices or option.validate):
                value = float(text) if option.real else int(text)
            return option.check(value)
        except ValueError as e:  # ConfigError is one; int("x") another
            raise argparse.ArgumentTypeError(str(e) if isinstance(e, ConfigError) else
                                             f"{option.name} must be a number, got {text!r}") from None
    convert.__name__ = option.name
    return convert


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: what to run, and the settings of the command's table."""

    command: str
    inputs: list[str]
    output: str
    settings: dict[str, Any]
    limits: Limits
    quiet: int = 0
    scheduler: str | None = None
    workers: int | None = None
    report: str | None = None


def parse_command(argv: Sequence[str] | None = None) -> Invocation:
    """The command line read and checked as ``cgdm`` checks its own: an option of the other
    command, or options that contradict each other, end in a usage error (exit 2)."""
    from dataclasses import replace

    from .options import DECODE_OPTION, ENCODE_OPTION, command_line

    parser = _parser()
    args = vars(parser.parse_args(argv))
    if args["workers"] is not None and args["workers"] < 1:
        parser.error("--workers must be at least 1")
    table = ENCODE_OPTION if args["command"] == "encode" else DECODE_OPTION
    given = {k: v for k, v in args.items() if k in ENCODE_OPTION or k in DECODE_OPTION}
    for name in given:
        if name not in table:
            other = (ENCODE_OPTION.get(name) or DECODE_OPTION[name]).flag_name
            parser.error(f"{other} is not an option of {args['command']}")
    own = {k: given.pop(k) for k in OWN_OPTIONS if k in given}
    try:
        settings_of(args["command"], given, command_line)
    except ConfigError as e:
        parser.error(str(e))
    limits = replace(Limits.from_env(), **{k: v for k, v in own.items() if k != "quiet"})
    return Invocation(args["command"], args["inputs"], args["output"], given, limits, own.get("quiet", 0),
                      args["scheduler"], args["workers"], args["report"])


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns the exit code: 0, 1 if any file failed, 2 for a usage error."""
    # The tasks must be pickled by reference to the importable module, not to __main__.
    from cgdm_codec import distributed as this

    try:
        inv = parse_command(argv)
    except ConfigError as e:  # a bad CGDM_* variable, from Limits.from_env
        print(f"cgdm: error: {e}", file=sys.stderr)
        return 2

    def show(r: FileResult) -> None:
        if not r.ok:
            print(f"cgdm: error: {r.error}", file=sys.stderr)
        elif not inv.quiet:
            print(f"{r.path} -> {r.output} ({r.bytes} bytes, {r.seconds:.2f}s)", file=sys.stderr)

    start = time.monotonic()
    try:
        results = this.run(inv.command, inv.inputs, inv.output, scheduler=inv.scheduler, workers=inv.workers,
                           limits=inv.limits, progress=show, **inv.settings)
        if inv.report:
            write_atomic(Path(inv.report), json.dumps([asdict(r) for r in results], indent=1).encode(),
                         overwrite=True)
    except KeyboardInterrupt:
        print("cgdm: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # no dask, no cluster, a bad setting: one line, never a traceback
        from .cli import describe_error

        if isinstance(e, (this.DaskMissingError, ConfigError)):
            msg, code = str(e), (2 if isinstance(e, ConfigError) else 1)
        else:
            msg, code = describe_error(e) or (f"{type(e).__name__}: {e}", 1)
        print(f"cgdm: error: {msg.splitlines()[0] if msg else type(e).__name__}", file=sys.stderr)
        return code
    print(summary_line(inv.command, results, time.monotonic() - start))
    return 1 if any(not r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
