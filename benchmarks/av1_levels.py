"""Mean bpp of the AV1 base per Pillow AVIF quality on full-size photos: calibrates LEVEL_QUALITY.

    python benchmarks/av1_levels.py ../shared/datasets/val/sunhays80 --limit 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cgdm_codec.base.av1 import LEVEL_QUALITY, encode_avif, speed_for
from cgdm_codec.base.avif_file import split_avif


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--qualities", type=int, nargs="*", default=sorted({0, 2, 5, 10, 14, 20, 26, 38, 50, 62, 70}))
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png", ".jpeg"})[: args.limit]
    rgbs = [np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB")) for p in paths]
    print(f"{len(rgbs)} images, mean {np.mean([a.shape[0] * a.shape[1] for a in rgbs]) / 1e6:.2f} MP, "
          f"the default effort's speed; levels use qualities {LEVEL_QUALITY}")
    for q in args.qualities:
        bpp = [8 * (len(split_avif(encode_avif(a, q, speed_for("default", a.shape[0] * a.shape[1])))) + 19) / (a.shape[0] * a.shape[1])
               for a in rgbs]
        print(f"quality {q:3d}: mean {np.mean(bpp):.4f} bpp (min {min(bpp):.4f}, max {max(bpp):.4f})", flush=True)


if __name__ == "__main__":
    main()
