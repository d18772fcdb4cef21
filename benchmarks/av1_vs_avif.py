"""BD-rate of cgdm on the AV1 base against Pillow AVIF files, on the same images.

    python benchmarks/av1_vs_avif.py ../shared/datasets/val/sunhays80 --limit 12 --downscale 0.5 [--effort fast] [--diffusion]

cgdm rows are real .cgdm files (bpp from their length) decoded by the pipeline; the AVIF
anchors are the files Pillow writes at the speed cgdm's default effort uses and at speed 2.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import cgdm_codec
from cgdm_codec import pipeline
from cgdm_codec.base.av1 import LEVEL_QUALITY, SPEED_FOR_EFFORT
from cgdm_codec.container import parse
from cgdm_lab.evaluation.bdrate import bd_rate
from cgdm_lab.evaluation.quality import vif
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import haarpsi, ms_ssim, psnr

METRICS = {"psnr": psnr, "ms_ssim": ms_ssim, "haarpsi": haarpsi, "vif": vif}


def load(path: Path, downscale: float) -> Image.Image:
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    if downscale != 1.0:
        im = im.resize((round(im.width * downscale), round(im.height * downscale)), Image.Resampling.LANCZOS)
    return im


def scores(ref: np.ndarray, out: np.ndarray, n_bytes: int) -> dict[str, float]:
    row = {k: f(ref, out) for k, f in METRICS.items()}
    row["bpp"] = 8 * n_bytes / (ref.shape[0] * ref.shape[1])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--diffusion", action="store_true", help="also cgdm with the diffusion stage")
    ap.add_argument("--effort", default="default", choices=sorted(SPEED_FOR_EFFORT),
                    help="cgdm's effort; the first AVIF anchor uses the AV1 speed of that effort")
    ap.add_argument("--out", type=Path, default=None, help="write the per-image rows as JSON here")
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png", ".jpeg"})[: args.limit]
    rows: dict[str, list[list[dict]]] = {}
    speed = SPEED_FOR_EFFORT[args.effort]
    for p in paths:
        im = load(p, args.downscale)
        ref = np.asarray(im)
        for lv in args.levels:
            q = LEVEL_QUALITY[lv - 1]
            for name, sp in ((f"avif-s{speed}", speed), ("avif-s2", 2)):
                buf = io.BytesIO()
                im.save(buf, "AVIF", quality=q, speed=sp, subsampling="4:2:0")
                dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
                rows.setdefault(name, []).append(scores(ref, dec, len(buf.getvalue())))
            modes = [("cgdm-base", False)] + ([("cgdm", None)] if args.diffusion else [])
            for name, diffusion in modes:
                data = cgdm_codec.encode(im, lv, base="av1", effort=args.effort, base_only=diffusion is False,
                                         device="cpu")
                out = pipeline.decode_file(parse(data), DecodeSettings(device="cpu"))
                r = scores(ref, out, len(data))
                r["diffusion"] = parse(data).diffusion
                rows.setdefault(name, []).append(r)
        print(f"{p.name} done", flush=True)
    anchor = f"avif-s{speed}"
    summary = {}
    for name, rs in rows.items():
        per_level = [[r for i, r in enumerate(rs) if i % len(args.levels) == k] for k in range(len(args.levels))]
        means = [{k: float(np.mean([r[k] for r in lv])) for k in ["bpp", *METRICS]} for lv in per_level]
        summary[name] = {"means": means}
        for a in (anchor, "avif-s2", "cgdm-base"):
            summary[name][f"bd_vs_{a}"] = {
                k: bd_rate([m["bpp"] for m in summary[a]["means"]] if a in summary else [],
                           [m[k] for m in summary[a]["means"]] if a in summary else [],
                           [m["bpp"] for m in means], [m[k] for m in means]) if a in summary else None
                for k in METRICS}
    for name, s in summary.items():
        print(name, " ".join(f"q{i + 1}: {m['bpp']:.3f} bpp {m['psnr']:.2f} dB {m['ms_ssim']:.4f} {m['haarpsi']:.4f}"
                             for i, m in enumerate(s["means"])))
    for name, s in summary.items():
        for a in (anchor, "avif-s2", "cgdm-base"):
            if a == name or a not in summary:
                continue
            bd = s.get(f"bd_vs_{a}") or {}
            print(f"{name} vs {a}: " + ", ".join(f"{k} {v:+.2f} %" if v is not None else f"{k} n/a"
                                                  for k, v in bd.items()))
    if args.diffusion:
        flags = [r["diffusion"] for r in rows["cgdm"]]
        print(f"cgdm wrote the diffusion stage in {sum(flags)}/{len(flags)} files")
    if args.out:
        args.out.write_text(json.dumps({"images": [p.name for p in paths], "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
