"""Peak memory and time of the command line on a big photo (issue: 6000x4000 and beyond).

Builds a photo-like test image of --size (default 6000x4000) in a temporary folder — a
mosaic of validation photos, each resized (Lanczos) to fill its cell, so the image has
real photographic texture everywhere rather than one upscaled blur — then runs
``cgdm encode``, ``cgdm decode --base-only`` and the full ``cgdm decode`` as fresh
subprocesses and reads each child's own peak RSS and CPU time from ``os.wait4``.

    python benchmarks/big_image.py --out runs/big-image.json

Nothing is written into the repository except --out. Markdown goes to stdout, progress to
stderr. The wall times depend on what else the machine runs; peak RSS does not.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from prepare import write_bytecode

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "val" / "sunhays80"
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def mosaic(folder: Path, size: tuple[int, int], cols: int, rows: int, dst: Path) -> Path:
    """A cols x rows mosaic of the folder's first photos, each fitted to its cell, as PNG."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {folder}")
    w, h = size
    canvas = Image.new("RGB", size)
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        x0, x1 = c * w // cols, (c + 1) * w // cols
        y0, y1 = r * h // rows, (r + 1) * h // rows
        with Image.open(files[k % len(files)]) as im:
            tile = ImageOps.fit(ImageOps.exif_transpose(im).convert("RGB"), (x1 - x0, y1 - y0),
                                method=Image.Resampling.LANCZOS)
        canvas.paste(tile, (x0, y0))
    canvas.save(dst, "PNG")
    return dst


def run_measured(argv: list[str], env: dict[str, str]) -> dict:
    """One child to completion: wall s, CPU s and its own peak RSS (wait4, not RUSAGE_CHILDREN)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace")[-1500:]
    rc = os.waitstatus_to_exitcode(status)
    kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss // 1024
    return {"command": shlex.join(argv), "returncode": rc, "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mib": round(kib / 1024),
            "stderr_tail": tail if rc else ""}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of photos")
    p.add_argument("--size", default="6000x4000", help="WxH of the test image")
    p.add_argument("--grid", default="3x2", help="mosaic columns x rows")
    p.add_argument("-q", "--quality", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="OMP threads for the children")
    p.add_argument("--no-full-decode", action="store_true", help="skip the diffusion decode")
    p.add_argument("--diffusion", action="store_true",
                   help="encode with --diffusion (the stage even where base-only scores better)")
    p.add_argument("--keep", type=Path, default=None,
                   help="work in this folder and keep the image, .cgdm and decoded files")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "big-image.json")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    cols, rows = (int(v) for v in args.grid.lower().split("x"))
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cgdm = [sys.executable, "-m", "cgdm_codec.cli"]
    log(write_bytecode())
    steps: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cgdm-big-") as tmp:
        t = Path(tmp) if args.keep is None else args.keep
        t.mkdir(parents=True, exist_ok=True)
        src = mosaic(args.images, (w, h), cols, rows, t / "big.png")
        log(f"test image {w}x{h} ({w * h / 1e6:.1f} MP), {src.stat().st_size} bytes PNG")
        forced = ["--diffusion"] if args.diffusion else []
        plan = [("encode", ["encode", str(src), "-q", str(args.quality), *forced, "-o", str(t / "big.cgdm")]),
                ("decode --base-only", ["decode", str(t / "big.cgdm"), "--base-only", "-o", str(t / "base.png")])]
        if not args.no_full_decode:
            plan.append(("decode", ["decode", str(t / "big.cgdm"), "-o", str(t / "full.png")]))
        for name, cmd in plan:
            r = run_measured(cgdm + cmd + ["-Q", "--force"], env)
            r["name"] = name
            steps.append(r)
            log(f"{name}: rc {r['returncode']}, {r['wall_s']} s wall, {r['cpu_s']} s CPU, "
                f"peak RSS {r['peak_rss_mib']} MiB")
            if r["returncode"]:
                log(r["stderr_tail"])
                break
        size = (t / "big.cgdm").stat().st_size if (t / "big.cgdm").exists() else 0
    result = {"command": shlex.join(["python", *sys.argv]),
              "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "image": {"width": w, "height": h, "grid": args.grid, "source": str(args.images),
                        "cgdm_bytes": size, "bpp": round(8 * size / (w * h), 4)},
              "cpu_count": os.cpu_count(), "threads": args.threads, "steps": steps}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("| step | wall s | CPU s | peak RSS (MiB) |\n|---|---:|---:|---:|")
    for s in steps:
        print(f"| `{s['name']}` | {s['wall_s']} | {s['cpu_s']} | {s['peak_rss_mib']} |")
    return 0 if all(s["returncode"] == 0 for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
