"""What the encoder's search buys: effort levels against the one-pass encode, per image.

For every image and quality level, encodes with each setting (in this process, so the
times are the encoder's own work without the ~5 s of imports), decodes the real bytes with
the diffusion stage, and scores PSNR, MS-SSIM and HaarPSI against the original. The
baseline is ``fast`` (one pass of the syntax generator, seed 0, no search); the other
settings are reported as differences to it on the same image and level.

    python benchmarks/effort.py --limit 12 --levels 1 3 6 --settings fast no-finetune default \\
        --out results/sunhays80/effort-fast-no-finetune-default.jsonl
    python benchmarks/effort.py --limit 4 --levels 3 --settings fast max --out results/sunhays80/effort-fast-vs-max.jsonl

Rows are appended to --out as JSON lines as soon as they exist, and rows already there are
skipped, so an interrupted run resumes. The Markdown summary goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "val" / "sunhays80"
SETTINGS = {  # name -> the encoder's settings (cgdm_codec.options.EncodeSettings) it sets
    "fast": {"effort": "fast"},
    "no-finetune": {"effort": "default", "finetune": False},
    # the default effort's base-codec speed (AV1: 6) with fast's one-pass search
    "one-pass": {"effort": "default", "finetune": False, "seeds": 1},
    "default": {"effort": "default"},
    # the CPU default until 2026-12-02: one-pass plus a short search
    "search-24": {"effort": "default", "finetune_iters": 24, "seeds": 2},
    "max": {"effort": "max"},
}
METRICS = ("psnr", "ms_ssim", "haarpsi")


def halved(path: Path, downscale: float) -> Image.Image:
    """8-bit RGB, EXIF-oriented, Lanczos-downscaled (sunhays80 sources are decoded JPEGs)."""
    with Image.open(path) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    img.info = {}  # rates of the pixels alone, not of the source's ICC profile and EXIF
    size = (max(1, round(img.width * downscale)), max(1, round(img.height * downscale)))
    return img.resize(size, Image.Resampling.LANCZOS) if downscale != 1 else img


def measure(img: Image.Image, level: int, setting: str, device: str) -> dict:
    from cgdm_codec import imageio, metrics
    from cgdm_codec.container import parse
    from cgdm_codec.options import DecodeSettings, EncodeSettings
    from cgdm_codec.pipeline import decode_file, encode_image

    prepared = imageio.from_pil(img)
    settings = EncodeSettings(quality=level, device=device, **SETTINGS[setting])
    t0 = time.perf_counter()
    data = encode_image(prepared, settings)
    encode_s = time.perf_counter() - t0
    f = parse(data)
    out = decode_file(f, DecodeSettings(device=device))
    ref = np.asarray(img)
    return {"bytes": len(data), "bpp": 8 * len(data) / (img.width * img.height), "seed": f.seed,
            "encode_s": encode_s, "megapixels": img.width * img.height / 1e6,
            **{m: getattr(metrics, m)(ref, out) for m in METRICS}}


def summary(rows: list[dict], baseline: str) -> str:
    """Mean differences to the baseline over (image, level) pairs present for both."""
    base = {(r["image"], r["level"]): r for r in rows if r["setting"] == baseline}
    lines = ["| setting | pairs | ΔPSNR dB | ΔMS-SSIM | ΔHaarPSI | Δbytes | better HaarPSI | "
             "encode s/image | encode s/MP |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        pairs = [(r, base[(r["image"], r["level"])]) for r in rows
                 if r["setting"] == setting and (r["image"], r["level"]) in base]
        if not pairs:
            continue
        d = {m: np.mean([r[m] - b[m] for r, b in pairs]) for m in (*METRICS, "bytes")}
        wins = sum(r["haarpsi"] > b["haarpsi"] for r, b in pairs)
        enc = np.mean([r["encode_s"] for r, _ in pairs])
        per_mp = np.mean([r["encode_s"] / r["megapixels"] for r, _ in pairs])
        lines.append(f"| {setting} | {len(pairs)} | {d['psnr']:+.3f} | {d['ms_ssim']:+.4f} | "
                     f"{d['haarpsi']:+.4f} | {d['bytes']:+.1f} | {wins}/{len(pairs)} | {enc:.1f} | "
                     f"{per_mp:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=12, help="first N images (sorted by name)")
    p.add_argument("--downscale", type=float, default=0.5)
    p.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6])
    p.add_argument("--settings", nargs="+", default=["fast", "no-finetune", "default"],
                   choices=list(SETTINGS))
    p.add_argument("--baseline", default="fast", choices=list(SETTINGS),
                   help="the setting the others are compared with (one-pass: same base-codec speed)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "effort.jsonl")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    files = sorted(p for p in args.images.iterdir()
                   if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:args.limit]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {(r["image"], r["level"], r["setting"]) for r in rows}
    todo = [(p, q, s) for p in files for q in args.levels for s in args.settings
            if (p.name, q, s) not in done]
    t0 = time.monotonic()
    for i, (path, level, setting) in enumerate(todo):
        row = {"image": path.name, "level": level, "setting": setting,
               **measure(halved(path, args.downscale), level, setting, args.device)}
        rows.append(row)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        eta = (time.monotonic() - t0) / (i + 1) * (len(todo) - i - 1)
        print(f"[{i + 1}/{len(todo)}] {path.name} q{level} {setting}: {row['encode_s']:.1f}s "
              f"{row['bytes']} B {row['psnr']:.2f} dB HaarPSI {row['haarpsi']:.4f} "
              f"(ETA {eta / 60:.0f} min)", file=sys.stderr, flush=True)
    print(summary(rows, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
