"""Batch throughput (-j 1 vs -j N) and target-size accuracy (--bpp) of the command line.

    python benchmarks/workflows.py ../shared/datasets/val/sunhays80 --out results/sunhays80/batches-and-target-sizes.json

Batch: every image of the folder (halved to PNGs first, as for every sunhays80 figure) is
encoded by one ``cgdm encode *.png -o DIR/ -j N`` process per N, then decoded by one
``cgdm decode *.cgdm -o DIR/ -j N``; whole-process wall time. Target size: for each target
bpp, ``cgdm encode IMG --bpp X`` per image; the relative miss is (target - size) / target
(never negative: the encoder does not exceed a target); files that cannot reach the target
are counted apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

CGDM = [str(Path(sys.executable).with_name("cgdm"))]


def halve(src: Path, dst: Path) -> Path:
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.resize((round(im.width / 2), round(im.height / 2)), Image.Resampling.LANCZOS).save(dst)
    return dst


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--jobs", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--bpp", type=float, nargs="*", default=[0.1, 0.25, 0.5])
    ap.add_argument("--target-limit", type=int, default=None, help="images for the target test [all]")
    ap.add_argument("--base", default="av1")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png"})[: args.limit]
    result: dict = {"images": len(paths), "base": args.base, "batch": {}, "target": {}}
    with tempfile.TemporaryDirectory(prefix="cgdm-wf-") as tmp:
        t = Path(tmp)
        (t / "in").mkdir()
        pngs = [halve(p, t / "in" / (p.stem + ".png")) for p in paths]
        for j in args.jobs:
            enc = timed(CGDM + ["encode", *map(str, pngs), "-o", str(t / f"c{j}"), "-j", str(j), "-Q",
                                "--base", args.base])
            coded = sorted((t / f"c{j}").iterdir())
            dec = timed(CGDM + ["decode", *map(str, coded), "-o", str(t / f"d{j}"), "-j", str(j), "-Q"])
            result["batch"][j] = {"encode_s": round(enc, 2), "decode_s": round(dec, 2),
                                  "encode_files_per_s": round(len(pngs) / enc, 2),
                                  "decode_files_per_s": round(len(pngs) / dec, 2)}
            print(f"-j {j}: encode {enc:.1f} s, decode {dec:.1f} s for {len(pngs)} files", flush=True)
        for bpp in args.bpp:
            misses, unreachable = [], 0
            for png in pngs[: args.target_limit]:
                out = t / "target.cgdm"
                r = subprocess.run(CGDM + ["encode", str(png), "--bpp", str(bpp), "-o", str(out), "-f", "-Q",
                                           "--base", args.base], capture_output=True)
                if r.returncode != 0:
                    unreachable += 1
                    continue
                with Image.open(png) as im:
                    budget = int(bpp * im.width * im.height / 8)
                misses.append((budget - out.stat().st_size) / budget)
            result["target"][bpp] = {"files": len(misses), "unreachable": unreachable,
                                     "mean_miss": round(statistics.mean(misses), 4) if misses else None,
                                     "worst_miss": round(max(misses), 4) if misses else None,
                                     "over_target": sum(m < 0 for m in misses)}
            print(f"--bpp {bpp}: {result['target'][bpp]}", flush=True)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.pop("CGDM_BASE", None)
    main()
