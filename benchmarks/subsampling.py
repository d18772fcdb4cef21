"""4:2:0 against 4:4:4 for cgdm's AV1 base, the whole codec (base and diffusion stage), on
photos that were never JPEG-compressed.

    python benchmarks/subsampling.py /tmp/camera12 --out results/camera12/chroma-subsampling.json

Each photo (``benchmarks/camera_set.py``'s set is already downscaled: ``--downscale 1``)
is coded at every level by ``cgdm encode`` (default effort, the newest generation) twice,
with the AV1 base in 4:2:0 (the shipped setting) and in 4:4:4 (``base.av1.SUBSAMPLING``),
and decoded by the default decoder. BD-rate of 4:4:4 against 4:2:0 on PSNR, MS-SSIM and
HaarPSI over the mean curves (bpp from the files' bytes), and the encode and decode times.
The network was trained on 4:2:0 decodes only.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import cgdm_codec
from cgdm_codec import pipeline
from cgdm_codec.base import av1
from cgdm_codec.container import parse
from cgdm_lab.evaluation.bdrate import bd_rate
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array
from cgdm_codec.quality import haarpsi, ms_ssim, psnr
from cgdm_codec.options import DecodeSettings

METRICS = {"psnr": psnr, "ms_ssim": ms_ssim, "haarpsi": haarpsi}


def compare(files: list[Path], downscale: float, levels: list[int],
            variants: dict[str, Callable[[], None]]) -> tuple[list[dict], dict, dict]:
    """Each photo coded at every level once per variant (the callable sets the base up for
    it) and decoded by the default decoder: the rows, the mean curves, and each later
    variant's BD-rate against the first."""
    rows = []
    for path in files:
        img = load_reference(path, downscale)
        ref = to_rgb_array(img)
        for lv in levels:
            for name, set_up in variants.items():
                set_up()
                t0 = time.perf_counter()
                data = cgdm_codec.encode(img, lv, base="av1", device="cpu")
                t1 = time.perf_counter()
                out = pipeline.decode_file(parse(data), DecodeSettings(device="cpu"))
                t2 = time.perf_counter()
                rows.append(dict(image=path.name, level=lv, variant=name, bpp=8 * len(data) / (img.width * img.height),
                                 encode_s=t1 - t0, decode_s=t2 - t1, **{k: fn(ref, out) for k, fn in METRICS.items()}))
            print(path.name[:24], lv, " | ".join(f"{r['variant']} {r['bpp']:.4f} {r['psnr']:.2f}"
                                                 for r in rows[-len(variants):]), flush=True)
    curve = {v: {k: [float(np.mean([r[k] for r in rows if r["variant"] == v and r["level"] == lv]))
                     for lv in levels] for k in ("bpp", *METRICS, "encode_s", "decode_s")}
             for v in variants}
    first, *others = variants
    bd = {v: {k: bd_rate(curve[first]["bpp"], curve[first][k], curve[v]["bpp"], curve[v][k]) for k in METRICS}
          for v in others}
    for v, row in bd.items():
        print(f"{len(files)} images; BD-rate of {v} against {first}: "
              + ", ".join(f"{k} {x:+.2f} %" if x is not None else f"{k} n/a" for k, x in row.items()))
    for v in curve:
        print(v, "encode s (mean per file)", round(float(np.mean(curve[v]["encode_s"])), 2),
              "decode s", round(float(np.mean(curve[v]["decode_s"])), 2))
    return rows, curve, bd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--downscale", type=float, default=1.0)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    files = list_images(args.images)[: args.limit]
    variants = {sub: (lambda sub=sub: setattr(av1, "SUBSAMPLING", sub)) for sub in ("4:2:0", "4:4:4")}
    try:
        rows, curve, bd = compare(files, args.downscale, args.levels, variants)
    finally:
        av1.SUBSAMPLING = "4:2:0"
    if args.out:
        args.out.write_text(json.dumps({"images": [p.name for p in files], "levels": args.levels,
                                        "bd_rate": bd["4:4:4"], "curves": curve, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
