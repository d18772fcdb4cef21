"""Quality and time of the diffusion decode against its settings: DDIM steps and tiling.

    python benchmarks/decode_settings.py ../shared/datasets/val/sunhays80 --limit 8 --levels 2 4 \
        --out results/sunhays80/decode-steps-and-tiling-8.json

Each image (halved, as for every sunhays80 figure) is coded once per level with the learned
base and the diffusion stage (``--effort fast``), then its syntax and seed are decoded under
every (tiling, steps) setting. Rows: mean PSNR / MS-SSIM / HaarPSI against the original and
the mean seconds of the diffusion stage alone (same process, weights loaded, 2 threads).
The syntax was chosen for the shipped setting (fixed tiling, 9 steps), so other settings are
judged with a syntax not tuned to them: a fair bound for choosing a new default.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import cgdm_codec
from cgdm_codec import generations
from cgdm_codec.base.interface import tensor_to_rgb
from cgdm_codec.container import parse
from cgdm_codec.quality import haarpsi, ms_ssim, psnr
from cgdm_codec.sampling.restore import restore

METRICS = {"psnr": psnr, "ms_ssim": ms_ssim, "haarpsi": haarpsi}
#: (name, sampler overrides): the shipped geometry and the fitted one at two maximum sides.
TILINGS = {"fixed-256": {}, "fitted-320": dict(tiling="fitted", tile=320),
           "fitted-384": dict(tiling="fitted", tile=384)}


def load(path: Path, downscale: float) -> Image.Image:
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return im.resize((round(im.width * downscale), round(im.height * downscale)), Image.Resampling.LANCZOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[2, 4])
    ap.add_argument("--steps", type=int, nargs="*", default=[3, 5, 9])
    ap.add_argument("--tilings", nargs="*", default=list(TILINGS), choices=list(TILINGS))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png"})[: args.limit]
    bundle = generations.load_bundle("hyperprior")
    cgdm = bundle.cgdm
    assert cgdm is not None, "the diffusion weights are not installed"
    rows: list[dict] = []
    for p in paths:
        im = load(p, args.downscale)
        ref = np.asarray(im)
        for lv in args.levels:
            data = cgdm_codec.encode(im, lv, base="hyperprior", effort="fast", diffusion=True, device="cpu")
            f = parse(data)
            x_tilde = bundle.base.reconstruct(f.base_streams, f.width, f.height, f.quality)
            base_row = {k: fn(ref, tensor_to_rgb(x_tilde.clone())) for k, fn in METRICS.items()}
            rows.append(dict(image=p.name, level=lv, setting="base-only", bpp=8 * len(data) / ref[..., 0].size,
                             seconds=0.0, **base_row))
            symbols = cgdm.prior.decode_syntax(f.syntax)
            cond = bundle.base.condition(f.base_streams, f.quality)
            for tiling in args.tilings:
                sampler = replace(cgdm.cfg.sampler, **TILINGS[tiling])
                for steps in args.steps:
                    t0 = time.perf_counter()
                    out = restore(cgdm, x_tilde, symbols, cond, f.seed, steps, sampler=sampler)
                    dt = time.perf_counter() - t0
                    rgb = tensor_to_rgb(out)
                    row = dict(image=p.name, level=lv, setting=f"{tiling} {steps} steps", bpp=8 * len(data) / ref[..., 0].size,
                               seconds=dt, **{k: fn(ref, rgb) for k, fn in METRICS.items()})
                    rows.append(row)
                    print(f"{p.name} q{lv} {row['setting']}: {row['psnr']:.2f} dB {row['ms_ssim']:.4f} "
                          f"{row['haarpsi']:.4f} {dt:.2f}s", flush=True)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    print("\n| setting | PSNR | MS-SSIM | HaarPSI | diffusion s |\n|---|---:|---:|---:|---:|")
    summary = {}
    for s in settings:
        sel = [r for r in rows if r["setting"] == s]
        m = {k: float(np.mean([r[k] for r in sel])) for k in ("psnr", "ms_ssim", "haarpsi", "seconds", "bpp")}
        summary[s] = m
        print(f"| {s} | {m['psnr']:.2f} | {m['ms_ssim']:.4f} | {m['haarpsi']:.4f} | {m['seconds']:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": [p.name for p in paths], "levels": args.levels,
                                        "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
