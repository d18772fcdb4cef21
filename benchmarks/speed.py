"""Speed and memory of the ``cgdm`` command line, measured the way a user experiences it.

Every step is a fresh ``cgdm`` subprocess (so interpreter start-up, imports and weight
loading are included), timed by wall clock, with the child's own peak resident memory and
CPU time taken from ``os.wait4``. Steps: ``cgdm info`` (best of 5), ``cgdm encode``,
``cgdm decode --base-only`` and the full ``cgdm decode`` (best of --repeat each). The
package's bytecode is written first, as an installed copy has it.

    python benchmarks/speed.py --out runs/speed.json
    python benchmarks/speed.py --size 3000x2000 --repeat 1 --out runs/speed-6mp.json

The test image is the first sunhays80 image, centre-cropped to the target aspect ratio and
resized (Lanczos) to exactly --size. Markdown goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from prepare import write_bytecode

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "val" / "sunhays80"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


@dataclass
class Run:
    """One subprocess: wall seconds, CPU seconds, peak RSS and exit status."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    returncode: int
    stderr_tail: str = ""


@dataclass
class Step:
    name: str
    argv: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> list[Run]:
        return [r for r in self.runs if r.returncode == 0]

    def summary(self) -> dict:
        ok = self.ok
        return {
            "name": self.name,
            "command": shlex.join(self.argv),
            "runs": len(self.runs),
            "failed": len(self.runs) - len(ok),
            "best_s": min((r.wall_s for r in ok), default=None),
            "median_s": statistics.median([r.wall_s for r in ok]) if ok else None,
            "cpu_s_of_best": min(ok, key=lambda r: r.wall_s).cpu_s if ok else None,
            "peak_rss_mib": max((r.peak_rss_mib for r in ok), default=None),
            "error": None if ok or not self.runs else self.runs[-1].stderr_tail,
        }


# ----------------------------------------------------------------------------- measuring


def rss_mib(ru_maxrss: int) -> float:
    """ru_maxrss is KiB on Linux and bytes on macOS."""
    return ru_maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else ru_maxrss / 1024.0


def run_measured(argv: list[str], env: dict[str, str]) -> Run:
    """Run one child to completion and read its own resource usage from wait4 (not a
    RUSAGE_CHILDREN delta, whose ru_maxrss is a running maximum over all children)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return Run(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
               peak_rss_mib=rss_mib(usage.ru_maxrss), returncode=proc.returncode,
               stderr_tail=tail if proc.returncode else "")


def measure(step: Step, repeat: int, env: dict[str, str]) -> Step:
    for i in range(repeat):
        r = run_measured(step.argv, env)
        step.runs.append(r)
        state = "ok" if r.returncode == 0 else f"FAILED rc={r.returncode}"
        log(f"  {step.name} [{i + 1}/{repeat}] {r.wall_s:.3f}s {r.peak_rss_mib:.0f} MiB {state}")
        if r.returncode != 0:
            log("    " + r.stderr_tail.strip().replace("\n", "\n    "))
            break
    return step


# ------------------------------------------------------------------------------- inputs


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    size = (int(w), int(h))
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}; use WxH, e.g. 768x512")
    return size


def first_image(folder: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {folder}")
    return files[0]


def prepare_image(src: Path, size: tuple[int, int], dst: Path) -> Path:
    """Centre-crop to the target aspect ratio and resize to exactly ``size``; save as PNG."""
    with Image.open(src) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    ImageOps.fit(img, size, method=Image.Resampling.LANCZOS).save(dst, "PNG")
    return dst


def cgdm_command() -> list[str]:
    """The installed ``cgdm`` script of this interpreter's environment, else ``python -m``."""
    beside = Path(sys.executable).with_name("cgdm")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("cgdm")
    return [found] if found else [sys.executable, "-m", "cgdm_codec.cli"]


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


# -------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def child_torch_info(env: dict[str, str]) -> dict:
    """torch version, thread count and GPU as the cgdm children will see them."""
    code = ("import json, torch; print(json.dumps({'torch': torch.__version__, "
            "'threads': torch.get_num_threads(), 'interop_threads': torch.get_num_interop_threads(), "
            "'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}


def environment(env: dict[str, str]) -> dict:
    import PIL

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(), "pillow": PIL.__version__,
            "platform": platform.platform(), **child_torch_info(env),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS"),
            "PYTHONDONTWRITEBYTECODE": env.get("PYTHONDONTWRITEBYTECODE")}


# -------------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    e, im = result["environment"], result["image"]
    lines = [
        "## cgdm command-line speed",
        "",
        f"- command: `{result['command']}`",
        f"- date: {result['date']}",
        f"- image: {im['source']} -> {im['width']}x{im['height']} "
        f"({im['megapixels']:.2f} MP), quality {result['quality']}, "
        f"{im['cgdm_bytes']} bytes = {im['bpp']} bpp",
        f"- CPU: {e['cpu']} ({e['cpu_count']} logical cores), torch {e.get('torch')} with "
        f"{e.get('threads')} threads, GPU: {e.get('cuda') or 'none'}, device {result['device']}",
        "",
        "| step | runs | best (s) | median (s) | CPU of best (s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in result["steps"]:
        if s["best_s"] is None:
            lines.append(f"| `{s['name']}` | {s['runs']} | failed | | | |")
            continue
        lines.append(f"| `{s['name']}` | {s['runs']} | {s['best_s']:.3f} | {s['median_s']:.3f} "
                     f"| {s['cpu_s_of_best']:.2f} | {s['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", type=Path, default=None,
                   help="source image [default: first image of sunhays80]")
    p.add_argument("--size", type=parse_size, default=(768, 512), help="WxH of the test image")
    p.add_argument("-q", "--quality", type=int, default=3, help="cgdm quality level")
    p.add_argument("--repeat", type=int, default=3, help="runs of encode/decode (best is kept)")
    p.add_argument("--info-repeat", type=int, default=5, help="runs of cgdm info")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None,
                   help="OMP/MKL threads for the children [default: torch's own choice]")
    p.add_argument("--effort", nargs="+", default=["default"], choices=["fast", "default", "max"],
                   help="encoder effort level(s) to time; decodes use the first one's file")
    p.add_argument("--no-full-decode", action="store_true", help="skip the diffusion decode")
    p.add_argument("--base", default=None, choices=["av1", "hyperprior"],
                   help="base codec of the encodes (sets CGDM_BASE for the children) [default: cgdm's]")
    p.add_argument("--diffusion", action="store_true",
                   help="encode with --diffusion (the stage even where base-only scores better)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "speed.json", help="JSON output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = child_env(args.threads)
    if args.base:
        env["CGDM_BASE"] = args.base
    cgdm = cgdm_command()
    bytecode = write_bytecode()
    src = args.image or first_image(DEFAULT_IMAGES)
    w, h = args.size
    dev = ["--device", args.device]
    forced = ["--diffusion"] if args.diffusion else []
    with tempfile.TemporaryDirectory(prefix="cgdm-speed-") as tmp:
        png = prepare_image(src, args.size, Path(tmp) / f"input-{w}x{h}.png")
        enc_out, dec_out = Path(tmp) / f"img-{args.effort[0]}.cgdm", Path(tmp) / "out.png"
        steps = [Step(f"encode --effort {e}", cgdm + ["encode", str(png), "-q", str(args.quality),
                                                       "-o", str(Path(tmp) / f"img-{e}.cgdm"),
                                                       "--effort", e, "-Q", "-f", *dev, *forced])
                 for e in args.effort]
        steps += [
            Step("info", cgdm + ["info", str(enc_out)]),
            Step("decode --base-only", cgdm + ["decode", str(enc_out), "-o", str(dec_out),
                                               "--base-only", "-Q", "-f", *dev]),
        ]
        if not args.no_full_decode:
            steps.append(Step("decode", cgdm + ["decode", str(enc_out), "-o", str(dec_out),
                                                "-Q", "-f", *dev]))
        log(f"{src.name} -> {w}x{h}; cgdm = {shlex.join(cgdm)}")
        for step in steps:
            n = args.info_repeat if step.name == "info" else args.repeat
            measure(step, n, env)
            if step.name.startswith("encode") and not step.ok:
                log("encode failed; the remaining steps need its output")
                break
        size = enc_out.stat().st_size if enc_out.exists() else 0
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": args.device, "quality": args.quality, "base": env.get("CGDM_BASE", "default"),
        "image": {"source": str(src), "width": w, "height": h, "megapixels": w * h / 1e6,
                  "cgdm_bytes": size, "bpp": round(8 * size / (w * h), 4)},
        "environment": {**environment(env), "bytecode": bytecode},
        "steps": [s.summary() for s in steps],
        "raw": {s.name: [asdict(r) for r in s.runs] for s in steps},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    log(f"wrote {args.out}")
    return 0 if all(s.ok for s in steps if s.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
