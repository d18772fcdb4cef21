"""Crops of the fidelity decode by generation: original | AVIF | each generation, same bytes.

    python benchmarks/fidelity_crops.py /tmp/camera12 ../shared/datasets/val/sunhays80 --per-folder 2 \
        --levels 1 2 3 --generations cgdm-av1-4 cgdm-av1-5 --out results/camera12-sunhays80/crops/fidelity-cgdm-av1-4-vs-av1-5.png

Each image (sunhays80 halved as everywhere; other folders as they are) is coded by the
public API at each level, once per generation (``CGDM_DIFFUSION_WEIGHTS`` set to it, the
default effort), and by AVIF at speed 2 at the quality whose file is closest in size to
the last generation's. ``--fast`` adds, after each generation, the same file decoded with
``--fast`` (the network distilled from it, where one is installed). The window is the 128-px square of the original with the most fine
detail, enlarged 3x without smoothing: a one-pixel grid shows as a fine screen. Each
panel's label carries its bytes, PSNR and period-2 ratio (``cgdm_codec.artefacts``). A
JSON file beside the PNG records every number.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

import cgdm_codec
from cgdm_codec.artefacts import period2_ratio
from cgdm_lab.evaluation.anchors import AVIF_S2, bpp_of, cached, match_bpp
from cgdm_lab.evaluation.crops import crop_grid, detail_box
from cgdm_lab.evaluation.images import list_images, load_reference
from cgdm_codec.quality import psnr
from cgdm_codec.weights import weights_dir


def generation_path(name: str) -> str:
    return name if name.endswith(".safetensors") else str(weights_dir() / f"{name}.safetensors")


def label(name: str, n_bytes: int, ref: np.ndarray, out: np.ndarray) -> tuple[str, dict]:
    h, w = ref.shape[:2]
    row = {"bytes": n_bytes, "bpp": bpp_of(n_bytes, w, h), "psnr": psnr(ref, out), "period2": period2_ratio(out)}
    return f"{name}\n{n_bytes:,} B {row['psnr']:.2f} dB\nperiod-2 {row['period2']:.2f}", row


def panels(img: Image.Image, level: int, generations: list[str], fast: bool = False) -> tuple[list, dict]:
    ref = np.asarray(img)
    out: list = [(ref, f"original\nperiod-2 {period2_ratio(ref):.2f}")]
    record: dict = {}
    coded = {}
    for g in generations:
        os.environ["CGDM_DIFFUSION_WEIGHTS"] = generation_path(g)
        data = cgdm_codec.encode(img, quality=level)
        coded[g] = (data, np.asarray(cgdm_codec.decode(data).convert("RGB")))
    last = coded[generations[-1]][0]
    q, avif = match_bpp(cached(lambda k: AVIF_S2.encode(img, k)), 0, 100, bpp_of(len(last), *img.size),
                        img.width * img.height)
    dec = np.asarray(Image.open(io.BytesIO(avif)).convert("RGB"))
    text, record["avif-s2"] = label(f"AVIF s2 q{q}", len(avif), ref, dec)
    out.append((dec, text))
    for g in generations:
        text, record[g] = label(Path(g).stem, len(coded[g][0]), ref, coded[g][1])
        out.append((coded[g][1], text))
        if fast:
            os.environ["CGDM_DIFFUSION_WEIGHTS"] = generation_path(g)
            quick = np.asarray(cgdm_codec.decode(coded[g][0], fast=True).convert("RGB"))
            text, record[f"{g} --fast"] = label(f"{Path(g).stem} --fast", len(coded[g][0]), ref, quick)
            out.append((quick, text))
    return out, record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--per-folder", type=int, default=2)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--generations", nargs="+", default=["cgdm-av1-4"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--zoom", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/crops-fidelity.png"))
    ap.add_argument("--fast", action="store_true", help="add each generation's --fast decode")
    args = ap.parse_args()
    rows, boxes, record = [], [], []
    for folder in args.folders:
        for path in list_images(folder, args.per_folder):
            img = load_reference(path, 0.5 if "sunhays80" in str(folder) else 1.0)
            box = detail_box(img, args.size)
            for level in args.levels:
                row, numbers = panels(img, level, args.generations, args.fast)
                rows.append(row)
                boxes.append(box)
                record.append({"image": path.name, "level": level, "box": box, **numbers})
                print(path.name, level, {k: round(v["period2"], 2) for k, v in numbers.items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    crop_grid(rows, boxes, args.size, args.zoom).save(args.out)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
