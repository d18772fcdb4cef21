"""The encoder's diffusion-or-base-only decision under two objectives, and who was right.

    python benchmarks/decision.py ../shared/datasets/val/sunhays80 --levels 5 6 \
        --out results/sunhays80/encoder-decision-objective-levels-5-6.json

Each image (halved, as for every sunhays80 figure) is encoded at each level by the real
encoder (AV1 base, the default effort, the newest generation) twice: scoring the
decision with the objective the generation was trained with (``Objective.of`` its
manifest: what the encoder does since 2026-12-05), and with the default objective (L1 +
MS-SSIM + band energy + syntax rate, no HaarPSI: what it did before). Where the two
decisions differ, both files (with and without the stage) are decoded and measured: bytes,
PSNR, MS-SSIM, HaarPSI. The default objective is swapped in by replacing
``Objective.of`` for the second encode; nothing else differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import cgdm_codec
from cgdm_codec.container import parse
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import haarpsi, ms_ssim, psnr
from cgdm_codec.quality import objective

SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def halved(path: Path) -> Image.Image:
    with Image.open(path) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)


def encode(img: Image.Image, level: int, trained: bool, diffusion: bool | None = None) -> bytes:
    """One encode; ``trained`` False scores the decision with the default objective."""
    own = objective.Objective.of
    if not trained:
        objective.Objective.of = classmethod(lambda cls, manifest: cls())
    try:
        return cgdm_codec.encode(img, level, base="av1", device="cpu", base_only=diffusion is False,
                                 diffusion=bool(diffusion))
    finally:
        objective.Objective.of = own


def measure(data: bytes, ref: np.ndarray) -> dict:
    out = pipeline.decode_file(parse(data), DecodeSettings(device="cpu"))
    return {"bytes": len(data), "psnr": psnr(out, ref), "ms_ssim": ms_ssim(out, ref),
            "haarpsi": haarpsi(out, ref)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--levels", type=int, nargs="+", default=[5, 6])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in SUFFIXES)[:args.limit]
    rows, changed = [], []
    for path in paths:
        img = halved(path)
        ref = np.asarray(img)
        for level in args.levels:
            now, before = (parse(encode(img, level, trained)).diffusion for trained in (True, False))
            rows.append({"image": path.name, "level": level, "stage_now": now, "stage_before": before})
            if now != before:
                both = {name: measure(encode(img, level, True, diffusion=forced), ref)
                        for name, forced in (("stage", True), ("base_only", False))}
                changed.append({"image": path.name, "level": level, "now": "stage" if now else "base_only", **both})
                print(f"{path.name} q{level}: {'base-only -> stage' if now else 'stage -> base-only'} {both}",
                      file=sys.stderr, flush=True)
    summary = {"files": len(rows), "stage_now": sum(r["stage_now"] for r in rows),
               "stage_before": sum(r["stage_before"] for r in rows), "changed": len(changed)}
    print(json.dumps(summary))
    for c in changed:
        s, b = c["stage"], c["base_only"]
        print(f"| {c['image']} | {c['level']} | now {c['now']} | {s['bytes'] - b['bytes']:+d} bytes | "
              f"{s['psnr'] - b['psnr']:+.3f} dB | {s['ms_ssim'] - b['ms_ssim']:+.5f} | {s['haarpsi'] - b['haarpsi']:+.4f} |")
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "summary": summary,
                                        "changed": changed, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
