"""Where realism 1's edge overshoot comes from: the realism network, or the texture stage.

    python benchmarks/overshoot_source.py PHOTOS [--levels 1 2] [--limit N] [--out F.json]

Each photo is coded once per level with a texture map (default effort) and decoded four
ways: realism 0; realism 1; realism 1 without the texture stage (the realism network
alone); realism 1's texture stage on the fidelity decode (no realism network). For each,
``artefacts.edge_overshoot`` against the original (mean 8-bit luma levels beyond the
original's local range within 3 px of its strongest edges; 0 for the original). The
differences say which part adds the overshoot.

    python benchmarks/overshoot_source.py PHOTOS --every 2 --edge 16 48 3 --edge 8 32 3 --out F.json

With ``--edge LOW HIGH RADIUS`` (repeatable) it asks instead what the texture stage's edge
mask trades: realism 1 only, coded and decoded with ``sampling.texture``'s EDGE_LOW /
EDGE_HIGH (8-bit levels per pixel) and EDGE_RADIUS set in this process (the encoder's
map fit sees them too), measuring the overshoot, the two finest bands' energy against the
original (``band_energy_ratios``) and the flat-area energy (``artefacts.flat_noise``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import cgdm_codec
from cgdm_codec import pipeline
from cgdm_codec.artefacts import edge_overshoot, flat_noise
from cgdm_codec.container import parse
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality.bands import band_energy_ratios
from cgdm_codec.sampling import texture

WAYS = {  # decode settings and ``pipeline.decode_file``'s keywords
    "realism 0": (DecodeSettings(), {}),
    "realism 1": (DecodeSettings(realism=1.0), {}),
    "realism network alone": (DecodeSettings(realism=1.0), {"texture": False}),
    "texture stage on the fidelity decode": (DecodeSettings(realism=1.0), {"realism_network": False}),
}


def sources(photos: list[Path], levels: list[int]) -> list[dict]:
    """Per photo and level, the overshoot of each of ``WAYS``."""
    rows = []
    for path in photos:
        original = np.asarray(Image.open(path).convert("RGB"))
        for level in levels:
            f = parse(cgdm_codec.encode(Image.fromarray(original), level, texture_map=True))
            row = {"photo": path.name, "level": level}
            for way, (settings, keywords) in WAYS.items():
                row[way] = round(edge_overshoot(pipeline.decode_file(f, settings, **keywords), original), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def edge_settings(photos: list[Path], levels: list[int], variants: list[list[float]]) -> list[dict]:
    """Per photo, level and edge-mask setting, realism 1's overshoot, band energies and flat energy."""
    rows = []
    for path in photos:
        original = np.asarray(Image.open(path).convert("RGB"))
        for level in levels:
            for low, high, radius in variants:
                texture.EDGE_LOW, texture.EDGE_HIGH, texture.EDGE_RADIUS = low / 255, high / 255, int(radius)
                f = parse(cgdm_codec.encode(Image.fromarray(original), level, texture_map=True))
                decoded = pipeline.decode_file(f, DecodeSettings(realism=1.0))
                bands = band_energy_ratios(decoded, original)
                rows.append({"photo": path.name, "level": level, "way": f"edge {low:g}/{high:g} r{radius:g}",
                             "overshoot": round(edge_overshoot(decoded, original), 4), "band 1": round(bands[0], 4),
                             "band 2": round(bands[1], 4), "flat": round(flat_noise(decoded, original), 4)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--every", type=int, default=1, help="every Nth photo of the sorted listing")
    ap.add_argument("--edge", type=float, nargs=3, action="append", metavar=("LOW", "HIGH", "RADIUS"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    photos = photos[::args.every][:args.limit]
    if args.edge:
        rows = edge_settings(photos, args.levels, args.edge)
        measures = ("overshoot", "band 1", "band 2", "flat")
        summary = {f"level {level} {way}": {m: round(float(np.mean([r[m] for r in rows if r["level"] == level and r["way"] == way])), 4)
                                            for m in measures}
                   for level in args.levels for way in dict.fromkeys(r["way"] for r in rows)}
    else:
        rows = sources(photos, args.levels)
        summary = {f"level {level}": {way: round(float(np.mean([r[way] for r in rows if r["level"] == level])), 4)
                                      for way in WAYS} for level in args.levels}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"photos": str(args.photos), "levels": args.levels, "every": args.every,
                                        "edge": args.edge, "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
