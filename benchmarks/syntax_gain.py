"""Does the syntax carry information? Syntax bytes per file, and the encoder objective of the
decode with the sent syntax against the same decode with an all-zero syntax.

    python benchmarks/syntax_gain.py ../shared/datasets/val/sunhays80 --limit 6 --levels 1 3 5 --base av1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cgdm_codec import pipeline
from cgdm_codec.container import parse
from cgdm_codec.sampling.restore import restore
from cgdm_codec.tuning.objective import Objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 3, 5])
    ap.add_argument("--base", default="av1")
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png", ".jpeg"})[: args.limit]
    bundle = pipeline.load_bundle(args.base)
    cgdm, objective = bundle.cgdm, Objective()
    assert cgdm is not None, "no diffusion weights for this base"
    sizes, gains, nonzero = [], [], []
    for p in paths:
        im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
        im = im.resize((round(im.width * args.downscale), round(im.height * args.downscale)), Image.Resampling.LANCZOS)
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255
        for lv in args.levels:
            f = parse(pipeline.encode(im, lv, base=args.base, effort="fast", diffusion=True, device="cpu"))
            x_tilde = bundle.base.reconstruct(f.base_streams, f.width, f.height, f.quality)
            cond = bundle.base.condition(f.base_streams, f.quality)
            sent = cgdm.prior.decode_syntax(f.syntax)
            pixels = f.width * f.height
            score = {}
            for name, sym in (("sent", sent), ("zero", torch.zeros_like(sent))):
                out = restore(cgdm, x_tilde, sym, cond, f.seed, f.steps, device="cpu")
                bpp = 8 * len(cgdm.prior.encode_syntax(sym)) / pixels
                score[name] = float(objective(out, x, bpp))
            sizes.append(len(f.syntax))
            nonzero.append(int((sent != 0).sum()))
            gains.append(score["zero"] - score["sent"])
            print(f"{p.name} q{lv}: syntax {len(f.syntax)} B, {nonzero[-1]} non-zero symbols, "
                  f"objective sent {score['sent']:.5f} zero {score['zero']:.5f}", flush=True)
    print(f"{len(sizes)} files: mean syntax {np.mean(sizes):.1f} bytes, {np.mean(nonzero):.1f} non-zero symbols; "
          f"objective gain of the sent syntax over all-zero: mean {np.mean(gains):+.5f}, "
          f"better in {sum(g > 0 for g in gains)}/{len(gains)}")


if __name__ == "__main__":
    main()
