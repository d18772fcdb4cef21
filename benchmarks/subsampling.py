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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--downscale", type=float, default=1.0)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    files = list_images(args.images)[: args.limit]
    rows = []
    for path in files:
        img = load_reference(path, args.downscale)
        ref = to_rgb_array(img)
        for lv in args.levels:
            for sub in ("4:2:0", "4:4:4"):
                av1.SUBSAMPLING = sub
                t0 = time.perf_counter()
                data = cgdm_codec.encode(img, lv, base="av1", device="cpu")
                t1 = time.perf_counter()
                out = pipeline.decode_file(parse(data), DecodeSettings(device="cpu"))
                t2 = time.perf_counter()
                rows.append(dict(image=path.name, level=lv, subsampling=sub, bpp=8 * len(data) / (img.width * img.height),
                                 encode_s=t1 - t0, decode_s=t2 - t1, **{k: fn(ref, out) for k, fn in METRICS.items()}))
            print(path.name[:24], lv, " | ".join(f"{r['subsampling']} {r['bpp']:.4f} {r['psnr']:.2f}" for r in rows[-2:]),
                  flush=True)
    av1.SUBSAMPLING = "4:2:0"
    curve = {s: {k: [float(np.mean([r[k] for r in rows if r["subsampling"] == s and r["level"] == lv]))
                     for lv in args.levels] for k in ("bpp", *METRICS, "encode_s", "decode_s")}
             for s in ("4:2:0", "4:4:4")}
    bd = {k: bd_rate(curve["4:2:0"]["bpp"], curve["4:2:0"][k], curve["4:4:4"]["bpp"], curve["4:4:4"][k])
          for k in METRICS}
    print(f"{len(files)} images; BD-rate of 4:4:4 against 4:2:0: "
          + ", ".join(f"{k} {v:+.2f} %" if v is not None else f"{k} n/a" for k, v in bd.items()))
    for s in curve:
        print(s, "encode s (mean per file)", round(float(np.mean(curve[s]["encode_s"])), 2),
              "decode s", round(float(np.mean(curve[s]["decode_s"])), 2))
    if args.out:
        args.out.write_text(json.dumps({"images": [p.name for p in files], "levels": args.levels, "bd_rate": bd,
                                        "curves": curve, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
