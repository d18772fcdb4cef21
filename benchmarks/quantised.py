"""The int8 decode (``--precision int8``, ``docs/quantisation.md``) against float32: numerics,
speed and rate-distortion, on the same files.

    python benchmarks/quantised.py numerics ../shared/datasets/train --out results/train/int8-numerics-8.json
    python benchmarks/quantised.py speed FILE.cgdm --threads 2 --repeat 9
    python benchmarks/quantised.py bd ../shared/datasets/val/sunhays80 --downscale 0.5 [--limit 20] \
        --out results/sunhays80/int8-vs-float32-rd.json
    python benchmarks/quantised.py realism /tmp/camera12 --out results/camera12/int8-realism.json

``numerics``: a few TRAINING photos (every 12th of urban100 from the 2nd, every 125th of
bsds500 from the 8th; each reduced by a whole factor to a shorter side of about 512 px),
coded at levels 1, 3, 5 with the diffusion stage, decoded in float32 and int8: PSNR between
the two decodes, their PSNR against the photo and the largest pixel difference.

``speed``: one process decodes FILE alternately in float32 and int8 (``pipeline.decode_file``,
ONNX Runtime, ``--threads``), after one decode of each to build the sessions; the network's
time (the features and denoise graphs, as ``decode_stages.py`` counts them) and the whole
``decode_file`` per run; medians and minimums.

``bd``: each image (``--downscale``, as every sunhays80 figure) coded at levels 1..6 with the
diffusion stage (default effort, float32: the encoder never runs int8), each file decoded in
float32 and in int8. Per decode: PSNR, MS-SSIM, HaarPSI, VIF against the original and the
period-2 ratio (``artefacts.period2_ratio``); per image the BD-rate of int8 against float32
over its six levels (same files, so the same rates: the BD-rate is the quality difference
in rate terms), then the mean over images. Resumable: rows already in ``--out`` are kept.
One network thread (``--threads``), metrics on one thread.

``realism``: each image (as given: ``--downscale`` 1; the camera set of
``benchmarks/camera_set.py`` is already downscaled) coded at levels 1, 2, 3 with a texture
map (default effort), decoded at realism 1 in float32 and in int8 (the realism network's
graphs): PSNR between the two, and for each its PSNR to the original, the two finest bands'
energy over the original's and the flat-area energy (``artefacts.flat_noise``); means per level.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

LEVELS = (1, 2, 3, 4, 5, 6)
METRICS = ("psnr", "ms_ssim", "haarpsi", "vif")


def decode_both(data: bytes, threads: int) -> tuple[np.ndarray, np.ndarray]:
    import cgdm_codec

    f32 = np.asarray(cgdm_codec.decode(data, threads=threads, precision="float32", runtime="onnx"))
    i8 = np.asarray(cgdm_codec.decode(data, threads=threads, precision="int8", runtime="onnx"))
    return f32, i8


def numerics(args: argparse.Namespace) -> dict:
    import cgdm_codec
    from cgdm_codec.quality import psnr

    data = Path(args.folder)
    files = sorted((data / "urban100").iterdir())[1::12] + sorted((data / "bsds500").iterdir())[7::125]
    rows = []
    for p in files:
        im = Image.open(p).convert("RGB")
        im = im.reduce(max(1, min(im.size) // 512))
        x = np.asarray(im)
        for q in (1, 3, 5):
            f32, i8 = decode_both(cgdm_codec.encode(im, quality=q, diffusion=True, threads=args.threads), args.threads)
            row = {"image": p.name, "size": list(im.size), "level": q, "int8_vs_float32": psnr(i8, f32),
                   "float32": psnr(f32, x), "int8": psnr(i8, x),
                   "max_diff": int(np.abs(i8.astype(int) - f32).max())}
            rows.append(row)
            print(json.dumps(row), flush=True)
    gap = [r["float32"] - r["int8"] for r in rows]
    return {"rows": rows, "min_int8_vs_float32": min(r["int8_vs_float32"] for r in rows),
            "mean_psnr_loss": statistics.mean(gap), "max_psnr_loss": max(gap)}


def speed(args: argparse.Namespace) -> dict:
    from cgdm_codec import pipeline
    from cgdm_codec.container import parse
    from cgdm_codec.options import DecodeSettings
    from cgdm_codec.runtime import OrtDenoiser

    net = {"t": 0.0}
    for name in ("features", "denoise"):
        original = getattr(OrtDenoiser, name)

        def timed(*a, _original=original, **k):
            s = time.perf_counter()
            out = _original(*a, **k)
            net["t"] += time.perf_counter() - s
            return out
        setattr(OrtDenoiser, name, timed)
    f = parse(Path(args.file).read_bytes())
    times: dict[str, dict[str, list[float]]] = {p: {"network": [], "decode_file": []} for p in ("float32", "int8")}
    for rep in range(args.repeat + 1):
        for p in ("float32", "int8"):
            net["t"] = 0.0
            settings = DecodeSettings(precision=p, runtime="onnx", threads=args.threads, device="cpu")
            s = time.perf_counter()
            pipeline.decode_file(f, settings)
            if rep:  # the first pair builds the sessions
                times[p]["network"].append(net["t"])
                times[p]["decode_file"].append(time.perf_counter() - s)
    out = {p: {k: {"median": statistics.median(v), "min": min(v)} for k, v in t.items()} for p, t in times.items()}
    ratios = [a / b for a, b in zip(times["int8"]["network"], times["float32"]["network"])]
    out["network_ratio_median"] = statistics.median(ratios)
    return out


def load(path: Path, downscale: float) -> Image.Image:
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    if downscale != 1.0:
        im = im.resize((round(im.width * downscale), round(im.height * downscale)), Image.Resampling.LANCZOS)
    return im


def scores(out: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    from cgdm_codec.artefacts import period2_ratio
    from cgdm_lab.evaluation.quality import vif
    from cgdm_codec.quality import haarpsi, ms_ssim, psnr

    return {"psnr": psnr(out, ref), "ms_ssim": ms_ssim(out, ref), "haarpsi": haarpsi(out, ref),
            "vif": vif(ref, out), "period2": period2_ratio(out)}


def bd(args: argparse.Namespace, previous: dict | None) -> dict:
    import torch

    import cgdm_codec
    from cgdm_codec.artefacts import period2_ratio
    from cgdm_lab.evaluation.bdrate import bd_rate
    from cgdm_lab.evaluation.images import list_images

    torch.set_num_threads(1)
    rows = list(previous["rows"]) if previous else []
    done = {r["image"] for r in rows}
    files = list_images(Path(args.folder), args.limit)
    for n, path in enumerate(files):
        if path.name in done:
            continue
        im = load(path, args.downscale)
        ref = np.asarray(im)
        for level in LEVELS:
            s = time.perf_counter()
            data = cgdm_codec.encode(im, quality=level, diffusion=True, threads=args.threads)
            f32, i8 = decode_both(data, args.threads)
            row = {"image": path.name, "level": level, "bpp": 8 * len(data) / (im.width * im.height),
                   "period2_original": period2_ratio(ref)}
            for p, out in (("float32", f32), ("int8", i8)):
                row[p] = scores(out, ref)
            row["int8_vs_float32_psnr"] = float(10 * math.log10(255 ** 2 / max(1e-12, np.mean(
                (i8.astype(np.float64) - f32) ** 2))))
            row["seconds"] = time.perf_counter() - s
            rows.append(row)
        print(f"[{n + 1}/{len(files)}] {path.name}: level 3 PSNR float32 {rows[-4]['float32']['psnr']:.3f} "
              f"int8 {rows[-4]['int8']['psnr']:.3f}", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(summarise(rows, args), indent=1) + "\n")
    return summarise(rows, args)


def summarise(rows: list[dict], args: argparse.Namespace) -> dict:
    from cgdm_lab.evaluation.bdrate import bd_rate

    images = sorted({r["image"] for r in rows})
    per_metric: dict[str, list[float]] = {m: [] for m in METRICS}
    for name in images:
        mine = sorted((r for r in rows if r["image"] == name), key=lambda r: r["level"])
        rate = [r["bpp"] for r in mine]
        for m in METRICS:
            a = [r["float32"][m] for r in mine]
            t = [r["int8"][m] for r in mine]
            if None in a or None in t:
                continue
            v = bd_rate(rate, a, rate, t)
            if v is not None:
                per_metric[m].append(v)
    levels = {}
    for level in LEVELS:
        mine = [r for r in rows if r["level"] == level]
        if not mine:
            continue
        levels[str(level)] = {
            **{f"{p}_{m}": statistics.mean(r[p][m] for r in mine if r[p][m] is not None)
               for p in ("float32", "int8") for m in METRICS},
            **{f"{p}_period2_median": statistics.median(r[p]["period2"] for r in mine) for p in ("float32", "int8")},
            **{f"{p}_period2_max": max(r[p]["period2"] for r in mine) for p in ("float32", "int8")},
            "int8_vs_float32_psnr_min": min(r["int8_vs_float32_psnr"] for r in mine),
            "bpp": statistics.mean(r["bpp"] for r in mine)}
    return {"command": vars(args), "images": len(images),
            "bd_rate_int8_vs_float32": {m: {"mean": statistics.mean(v) if v else None, "images": len(v),
                                            "max": max(v) if v else None} for m, v in per_metric.items()},
            "levels": levels, "rows": rows}


def realism(args: argparse.Namespace) -> dict:
    import cgdm_codec
    from cgdm_codec import artefacts
    from cgdm_codec.quality import band_energy_ratios, psnr

    rows = []
    files = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for path in files[:args.limit]:
        img = load(path, args.downscale)
        ref = np.asarray(img)
        for level in (1, 2, 3):
            data = cgdm_codec.encode(img, level, texture_map=True, threads=args.threads)
            out = {p: np.asarray(cgdm_codec.decode(data, realism=1.0, precision=p, runtime="onnx", threads=args.threads))
                   for p in ("float32", "int8")}
            row = {"image": path.name, "level": level, "int8_vs_float32": psnr(out["int8"], out["float32"])}
            for p, rgb in out.items():
                b1, b2 = band_energy_ratios(rgb, ref)
                row |= {f"psnr {p}": psnr(rgb, ref), f"band 1 {p}": b1, f"band 2 {p}": b2,
                        f"flat {p}": artefacts.flat_noise(rgb, ref)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k not in ("image", "level")]
    means = {level: {k: statistics.mean(r[k] for r in rows if r["level"] == level) for k in keys} for level in (1, 2, 3)}
    return {"rows": rows, "means_by_level": means, "min_int8_vs_float32": min(r["int8_vs_float32"] for r in rows)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("numerics")
    a.add_argument("folder", help="the training photos' folder")
    b = sub.add_parser("speed")
    b.add_argument("file", help="a .cgdm file with the diffusion stage")
    b.add_argument("--repeat", type=int, default=9)
    c = sub.add_parser("bd")
    c.add_argument("folder")
    c.add_argument("--downscale", type=float, default=0.5)
    c.add_argument("--limit", type=int, default=None)
    r = sub.add_parser("realism")
    r.add_argument("folder")
    r.add_argument("--downscale", type=float, default=1.0)
    r.add_argument("--limit", type=int, default=12)
    for p in (a, b, c, r):
        p.add_argument("--threads", type=int, default=2 if p in (b, r) else 1)
        p.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.what == "numerics":
        result = numerics(args)
    elif args.what == "speed":
        result = speed(args)
    elif args.what == "realism":
        result = realism(args)
    else:
        out = Path(args.out) if args.out else None
        result = bd(args, json.loads(out.read_text()) if out and out.is_file() else None)
    brief = {k: v for k, v in result.items() if k != "rows"}
    print(json.dumps(brief, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
