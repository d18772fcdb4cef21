"""Does the syntax carry information? Syntax bytes per file, and the encoder objective of the
decode with the sent syntax against the same decode (same seed, same steps) with a syntax that
carries no per-image information: all zeros, and the coordinate-wise median of the syntaxes
sent for the whole run (one constant vector; the fairer reference for a U-Net trained on
non-zero syntax values). A positive gain means the sent syntax decodes better.

    python benchmarks/syntax_gain.py ../shared/datasets/val/sunhays80 --limit 6 --levels 1 3 5 --base av1

Set CGDM_DIFFUSION_WEIGHTS to measure other weights than the installed ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import cgdm_codec
from cgdm_codec import generations
from cgdm_codec.container import parse
from cgdm_codec.sampling.restore import restore
from cgdm_codec.quality.objective import Objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 3, 5])
    ap.add_argument("--base", default="av1")
    ap.add_argument("--effort", default="default", choices=["fast", "default", "max"])
    ap.add_argument("--out", type=Path, default=None, help="JSON of every file's scores")
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".png", ".jpeg"})[: args.limit]
    bundle = generations.load_bundle(args.base)
    cgdm, objective = bundle.cgdm, Objective()
    assert cgdm is not None, "no diffusion weights for this base"
    coded = []
    for p in paths:
        im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
        im = im.resize((round(im.width * args.downscale), round(im.height * args.downscale)), Image.Resampling.LANCZOS)
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255
        for lv in args.levels:
            f = parse(cgdm_codec.encode(im, lv, base=args.base, effort=args.effort, diffusion=True, device="cpu"))
            coded.append((p.name, lv, x, f, cgdm.prior.decode_syntax(f.syntax)))
    median = torch.stack([sent for *_, sent in coded]).median(dim=0).values
    rows = []
    for name, lv, x, f, sent in coded:
        x_tilde = bundle.base.reconstruct(f.base_streams, f.width, f.height, f.quality)
        cond = bundle.base.condition(f.base_streams, f.quality)
        pixels = f.width * f.height
        score = {}
        for ref, sym in (("sent", sent), ("zero", torch.zeros_like(sent)), ("median", median)):
            out = restore(cgdm, x_tilde, sym, cond, f.seed, f.steps, device="cpu")
            bpp = 8 * len(cgdm.prior.encode_syntax(sym)) / pixels
            score[ref] = float(objective.torch(out, x, bpp))
        rows.append({"image": name, "level": lv, "syntax_bytes": len(f.syntax),
                     "nonzero": int((sent != 0).sum()), **score})
        print(f"{name} q{lv}: syntax {len(f.syntax)} B, {rows[-1]['nonzero']} non-zero symbols, "
              f"objective sent {score['sent']:.5f} zero {score['zero']:.5f} median {score['median']:.5f}",
              flush=True)
    summary = {"files": len(rows), "mean_syntax_bytes": float(np.mean([r["syntax_bytes"] for r in rows])),
               "mean_nonzero": float(np.mean([r["nonzero"] for r in rows]))}
    line = (f"{len(rows)} files: mean syntax {summary['mean_syntax_bytes']:.1f} bytes, "
            f"{summary['mean_nonzero']:.1f} non-zero symbols")
    for ref in ("zero", "median"):
        gains = [r[ref] - r["sent"] for r in rows]
        summary[f"gain_over_{ref}"] = float(np.mean(gains))
        summary[f"better_than_{ref}"] = sum(g > 0 for g in gains)
        line += f"; gain over {ref}: mean {np.mean(gains):+.5f}, better in {sum(g > 0 for g in gains)}/{len(gains)}"
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": "python benchmarks/syntax_gain.py " + " ".join(
            f"{k}={v}" for k, v in vars(args).items() if k != "out"), "summary": summary, "rows": rows},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
