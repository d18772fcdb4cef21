"""How much the realism network's picture depends on the noise it reads.

    python benchmarks/realism_noise.py /tmp/camera12 --levels 1 2 3 --out results/camera12/realism-noise-input.json

``cgdm-av1-6`` stopped reading x_T, the seeded noise of the one-step decode, because the
fidelity network's picture did not depend on it (``docs/diffusion.md``), and that took 28 %
of its arithmetic. The realism network that decodes the same files above realism 0
(``cgdm-av1-5r``) still reads it. This asks whether it needs to: each photo (as given:
the camera set of ``benchmarks/camera_set.py`` is already downscaled; ``--downscale``
otherwise) is coded per level with a texture map, and decoded at realism 1, texture stage
on, three ways that differ only in x_T (the texture stage's grain keeps the file's seed):

- ``seed``: as written (x_T from the file's seed);
- ``other``: x_T from the next seed;
- ``zero``: x_T = 0, the noise's expectation, which is what a network that does not read
  it computes (``UNetConfig.noise_input = false``).

Per photo and level: PSNR between ``seed`` and the two others (how far x_T moves the
picture), and for each decode its PSNR to the original, the two finest bands' energy over
the original's and the flat-area energy (``cgdm_codec.artefacts``). The means per level are
printed as a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import cgdm_codec
from cgdm_codec import artefacts, pipeline
from cgdm_codec.container import parse
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import band_energy_ratios, psnr
from cgdm_codec.sampling import noise, restore
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array

WAYS = ("seed", "other", "zero")


def decode_with_noise(f, way: str) -> np.ndarray:
    """The realism-1 decode of ``f`` with x_T as ``way`` says (``restore`` draws x_T from its
    ``noise_patch``; the texture stage draws its grain from its own)."""
    patch = noise.noise_patch
    if way == "other":
        restore.noise_patch = lambda seed, c, s: patch(seed + 1, c, s)
    elif way == "zero":
        restore.noise_patch = lambda seed, c, s: np.zeros_like(patch(seed, c, s))
    try:
        return pipeline.decode_file(f, DecodeSettings(realism=1.0))
    finally:
        restore.noise_patch = patch


def measure(ref: np.ndarray, f) -> dict[str, float]:
    out = {way: decode_with_noise(f, way) for way in WAYS}
    row = {"psnr seed-other": psnr(out["seed"], out["other"]), "psnr seed-zero": psnr(out["seed"], out["zero"])}
    for way, rgb in out.items():
        b1, b2 = band_energy_ratios(rgb, ref)
        row |= {f"{way} psnr": psnr(rgb, ref), f"{way} band 1": b1, f"{way} band 2": b2,
                f"{way} flat": artefacts.flat_noise(rgb, ref)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--downscale", type=float, default=1.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    for path in list_images(args.folder)[:args.limit]:
        img = load_reference(path, args.downscale)
        ref = to_rgb_array(img)
        for level in args.levels:
            f = parse(cgdm_codec.encode(img, level, texture_map=True))
            rows.append({"image": path.name, "level": level, **measure(ref, f)})
            print(json.dumps(rows[-1]), flush=True)
    keys = [k for k in rows[0] if k not in ("image", "level")]
    print("| level | " + " | ".join(keys) + " |")
    print("|---:|" + "---:|" * len(keys))
    for level in args.levels:
        sel = [r for r in rows if r["level"] == level]
        print(f"| {level} | " + " | ".join(f"{np.mean([r[k] for r in sel]):.3f}" for k in keys) + " |")
    if args.out:
        args.out.write_text(json.dumps({"weights": "newest AV1 generation and its realism network",
                                        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
