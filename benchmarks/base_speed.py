"""The AV1 base's libaom speed for large photos, for the whole codec (base and diffusion
stage): what a faster speed costs in BD-rate and saves in encode time.

    python benchmarks/base_speed.py /tmp/large6 --downscale 0.5 --speeds 4 6 --squares 4 --levels 1 2 3 4 5 \\
        --out results/large6/base-speed.json

Each photo is coded at every level by the real encoder (default effort, the newest
generation) once per speed, with ``base.av1.speed_for`` answering that speed whatever the
photo's size; each speed of ``--squares`` once more with libaom's rectangular partitions
off (``enable-rect-partitions=0``, added to Pillow's AVIF save here: the codec has no such
setting), and decoded by the default decoder (``subsampling.compare``). BD-rate of each
later speed against the first on PSNR, MS-SSIM and HaarPSI over the mean curves (bpp from
the files' bytes), and the mean encode and decode times per file. The shipped networks were
trained on speed-6 pairs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from cgdm_codec.base import av1
from cgdm_lab.evaluation.images import list_images

from subsampling import compare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--downscale", type=float, default=1.0, help="scale factor (0.5 halves)")
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    ap.add_argument("--speeds", type=int, nargs="+", default=[4, 6])
    ap.add_argument("--squares", type=int, nargs="*", default=[], help="speeds to run with square partitions too")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    files = list_images(args.images)[: args.limit]
    shipped = av1.speed_for, Image.Image.save

    def setting(speed: int, squares: bool) -> Callable[[], None]:
        def save(im: Image.Image, fp, format=None, **params):
            if format == "AVIF":
                params["advanced"] = {"enable-rect-partitions": "0"}
            return shipped[1](im, fp, format, **params)

        def set_up() -> None:
            av1.speed_for = lambda effort, pixels: speed
            Image.Image.save = save if squares else shipped[1]
        return set_up

    variants = {f"speed {s}": setting(s, False) for s in args.speeds}
    variants.update({f"speed {s}, squares": setting(s, True) for s in args.squares})
    try:
        rows, curve, bd = compare(files, args.downscale, args.levels, variants)
    finally:
        av1.speed_for, Image.Image.save = shipped
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": [p.name for p in files], "levels": args.levels,
                                        "downscale": args.downscale, "bd_rate": bd, "curves": curve,
                                        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
