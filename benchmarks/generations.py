"""Diffusion weights generations side by side on the same AV1 files: quality, texture, time.

    python benchmarks/generations.py ../shared/datasets/val/sunhays80 --limit 16 --levels 1 3 5 \
        --candidate cgdm-av1-3:5 --candidate cgdm-av1-3:1 --candidate new.safetensors:1 \
        --candidate real.safetensors:1:1.0 --out results/sunhays80/generations-NAME-16.json

Each image (halved, as for every sunhays80 figure) is AV1-coded once per level (the AV1
speed of the default effort: 6 until 2026-12-04, then 4, 3 since later that day); every candidate
``WEIGHTS:STEPS[:REALISM]`` (a shipped name or a .safetensors path) then writes its own
syntax (its generator, one pass, the default effort) and decodes with the given step
count, in torch float32 on the CPU, seed 0.
Rows: PSNR / MS-SSIM / HaarPSI against the original, the band-energy ratio of the two
finest Laplacian bands (decode / original, 1.0 = as much detail as the original), bpp
from the AV1 payload plus the syntax bytes, and the seconds of the diffusion stage. A
second table gives each setting's BD-rate (PSNR / MS-SSIM / HaarPSI, %) against the
base-only decode and against the first candidate: per image over its levels, then the
mean over images (needs two or more levels; an image whose curves do not overlap is left
out of that mean).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cgdm_codec.artefacts import flat_noise, period2_ratio
from cgdm_codec.base.av1 import Av1Base, quality_for
from cgdm_codec.base.interface import rgb_to_tensor, tensor_to_rgb
from cgdm_lab.evaluation.bdrate import bd_rate
from cgdm_codec.quality import band_energy_ratios as band_ratios, haarpsi, ms_ssim, psnr
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.sampling.restore import restore
from cgdm_codec.weights import weights_dir

METRICS = {"psnr": psnr, "ms_ssim": ms_ssim, "haarpsi": haarpsi}


def artefact_fields(rgb: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """The artefacts a fidelity metric can reward (``cgdm_codec.artefacts``)."""
    return {"period2": period2_ratio(rgb), "flat": flat_noise(rgb, ref)}


def load(path: Path, downscale: float) -> Image.Image:
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return im.resize((round(im.width * downscale), round(im.height * downscale)), Image.Resampling.LANCZOS)


def parse_candidate(text: str) -> tuple[str, Path, int, float | None]:
    parts = text.split(":")
    weights = Path(parts[0]) if parts[0].endswith(".safetensors") else weights_dir() / f"{parts[0]}.safetensors"
    realism = float(parts[2]) if len(parts) > 2 else None
    return text, weights, int(parts[1]), realism


def mean_bd_rates(rows: list[dict], anchor: str, setting: str) -> dict[str, float]:
    """Per-image BD-rate of ``setting`` against ``anchor`` on each metric, averaged over images."""
    out = {}
    for metric in METRICS:
        values = []
        for image in dict.fromkeys(r["image"] for r in rows):
            a = sorted((r["level"], r) for r in rows if r["image"] == image and r["setting"] == anchor)
            t = sorted((r["level"], r) for r in rows if r["image"] == image and r["setting"] == setting)
            v = bd_rate([r["bpp"] for _, r in a], [r[metric] for _, r in a],
                        [r["bpp"] for _, r in t], [r[metric] for _, r in t])
            if v is not None:
                values.append(v)
        out[metric] = float(np.mean(values)) if values else float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 3, 5])
    ap.add_argument("--candidate", action="append", required=True, help="WEIGHTS:STEPS[:REALISM]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png"})[: args.limit]
    cands = [parse_candidate(c) for c in args.candidate]
    models = {w: Cgdm.from_weights(w) for _, w, _, _ in cands}
    base = Av1Base()
    rows: list[dict] = []
    for p in paths:
        ref = np.asarray(load(p, args.downscale))
        h, w = ref.shape[:2]
        for lv in args.levels:
            enc = base.encode(ref, lv)
            xt_rgb = base.decode_rgb(enc.streams, w, h)
            x, xt = rgb_to_tensor(ref), rgb_to_tensor(xt_rgb)
            payload = len(enc.streams[0])
            rows.append(dict(image=p.name, level=lv, setting="base-only", bpp=8 * payload / (h * w), seconds=0.0,
                             bands=band_ratios(xt_rgb, ref), **{k: fn(ref, xt_rgb) for k, fn in METRICS.items()},
                             **artefact_fields(xt_rgb, ref)))
            for name, weights, steps, realism in cands:
                model = models[weights]
                with torch.no_grad():
                    values = model.syntax(x, xt, tiled=True, unit=True)
                r = model.cfg.syntax.symbol_range
                symbols = values.round().clamp(-r, r).long().view(-1)
                syntax_bytes = len(model.prior.encode_syntax(symbols))
                t0 = time.perf_counter()
                out = restore(model, xt.clone(), symbols, enc.condition, 0, steps, precision="fp32", realism=realism)
                dt = time.perf_counter() - t0
                rgb = tensor_to_rgb(out)
                row = dict(image=p.name, level=lv, setting=name, bpp=8 * (payload + syntax_bytes) / (h * w),
                           seconds=dt, bands=band_ratios(rgb, ref), **{k: fn(ref, rgb) for k, fn in METRICS.items()},
                           **artefact_fields(rgb, ref))
                rows.append(row)
                print(f"{p.name[:24]} q{lv} {name}: {row['psnr']:.2f} dB {row['ms_ssim']:.4f} {row['haarpsi']:.4f} "
                      f"bands {row['bands'][0]:.2f}/{row['bands'][1]:.2f} period-2 {row['period2']:.2f} "
                      f"{dt:.2f}s", flush=True)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    print(f"\n{len(paths)} images, levels {args.levels}; period-2: the median ratio, flat: the mean "
          "flat-area energy (cgdm_codec.artefacts)\n"
          "| setting | bpp | PSNR | MS-SSIM | HaarPSI | band 1 | band 2 | period-2 | flat | diffusion s |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for s in settings:
        sel = [r for r in rows if r["setting"] == s]
        m = {k: float(np.mean([r[k] for r in sel])) for k in ("bpp", "psnr", "ms_ssim", "haarpsi", "seconds")}
        m["band1"] = float(np.mean([r["bands"][0] for r in sel]))
        m["band2"] = float(np.mean([r["bands"][1] for r in sel]))
        m["period2"] = float(np.nanmedian([r["period2"] for r in sel]))
        m["flat"] = float(np.mean([r["flat"] for r in sel]))
        m["period2_by_level"] = {lv: float(np.nanmedian([r["period2"] for r in sel if r["level"] == lv]))
                                 for lv in args.levels}
        summary[s] = m
        print(f"| {s} | {m['bpp']:.4f} | {m['psnr']:.3f} | {m['ms_ssim']:.4f} | {m['haarpsi']:.4f} | "
              f"{m['band1']:.3f} | {m['band2']:.3f} | {m['period2']:.2f} | {m['flat']:.3f} | {m['seconds']:.2f} |")
    print("\nperiod-2 ratio by level (median over images)\n| setting | " + " | ".join(f"level {lv}" for lv in args.levels)
          + " |\n|---|" + "---:|" * len(args.levels))
    for s in settings:
        print(f"| {s} | " + " | ".join(f"{summary[s]['period2_by_level'][lv]:.2f}" for lv in args.levels) + " |")
    if len(args.levels) > 1:
        first = settings[1]
        print(f"\nBD-rate % (PSNR / MS-SSIM / HaarPSI), mean of per-image values\n"
              f"| setting | vs base-only | vs {first} |\n|---|---|---|")
        for s in settings:
            for key, anchor in (("bd_vs_base_only", "base-only"), ("bd_vs_first", first)):
                summary[s][key] = mean_bd_rates(rows, anchor, s)
            cells = [" / ".join(f"{v:+.2f}" for v in summary[s][k].values()) for k in ("bd_vs_base_only", "bd_vs_first")]
            print(f"| {s} | {cells[0]} | {cells[1]} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": [p.name for p in paths], "levels": args.levels,
                                        "candidates": args.candidate, "summary": summary, "rows": rows},
                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
