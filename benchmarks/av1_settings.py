"""AV1 base settings probe: BD-rate and encode time of Pillow AVIF speed / subsampling / tune choices.

    OMP_NUM_THREADS=1 python benchmarks/av1_settings.py   (8 sunhays80 photos, halved; docs/base-codec.md)
    python benchmarks/av1_settings.py --every 10 --qualities 5 16 28 40 52 --threads 2 \\
        --config s4='{"speed":4}' --config s3='{"speed":3}' --config s2='{"speed":2}'

Each ``--config NAME=JSON`` is a set of keywords for Pillow's AVIF ``save`` (4:2:0 unless it
says otherwise); the first is the reference of the BD-rates. Encode time is the sum over all
files of the probe.
"""
import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cgdm_lab.evaluation.bdrate import bd_rate
from cgdm_codec.quality import haarpsi, ms_ssim, psnr

SUNHAYS = Path(__file__).resolve().parents[2] / "shared/datasets/val/sunhays80"
#: The probe as first run (docs/base-codec.md's table).
DEFAULT_CONFIGS = {
    "s6-420": dict(speed=6),
    "s6-444": dict(speed=6, subsampling="4:4:4"),
    "s6-420-iq": dict(speed=6, advanced={"tune": "iq"}),
    "s6-420-ssim": dict(speed=6, advanced={"tune": "ssim"}),
    "s8-420": dict(speed=8),
    "s4-420": dict(speed=4),
    "s2-420": dict(speed=2),
}


def config(text: str) -> tuple[str, dict]:
    name, _, opts = text.partition("=")
    return name, json.loads(opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=SUNHAYS)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--every", type=int, default=1, help="every N-th photo by name")
    ap.add_argument("--qualities", type=int, nargs="+", default=[5, 15, 30, 45, 60])
    ap.add_argument("--threads", type=int, default=None, help="libaom threads (Pillow's max_threads)")
    ap.add_argument("--config", type=config, action="append", default=None, metavar="NAME=JSON")
    args = ap.parse_args()
    configs = dict(args.config) if args.config else DEFAULT_CONFIGS
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    imgs = []
    for p in paths[:: args.every][: args.count]:
        im = Image.open(p).convert("RGB")
        imgs.append(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS))
    extra = {} if args.threads is None else {"max_threads": args.threads}
    res = {}
    for name, opt in configs.items():
        rows, t = [], 0.0
        for q in args.qualities:
            b, P, M, H = [], [], [], []
            for im in imgs:
                buf = io.BytesIO()
                t0 = time.time()
                im.save(buf, "AVIF", quality=q, **{"subsampling": "4:2:0", **extra, **opt})
                t += time.time() - t0
                d = buf.getvalue()
                dec, a = np.asarray(Image.open(io.BytesIO(d)).convert("RGB")), np.asarray(im)
                b.append(8 * len(d) / (im.width * im.height))
                P.append(psnr(a, dec)); M.append(ms_ssim(a, dec)); H.append(haarpsi(a, dec))
            rows.append((np.mean(b), np.mean(P), np.mean(M), np.mean(H)))
        res[name] = (rows, t)
        print(name, round(t, 1), [tuple(round(float(v), 4) for v in r) for r in rows], flush=True)
    ref = next(iter(res))
    base = res[ref][0]
    for name, (rows, t) in res.items():
        out = [bd_rate([r[0] for r in base], [r[k] for r in base], [r[0] for r in rows], [r[k] for r in rows])
               for k in (1, 2, 3)]
        print(name, f"BD vs {ref} psnr/msssim/haarpsi %", [None if o is None else round(o, 2) for o in out],
              "time", round(t, 1))


if __name__ == "__main__":
    main()
