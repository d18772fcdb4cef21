"""The texture map's calibration on training photos: band energy, edge overshoot and flat-area
energy of realism-1 decodes of files written with a texture map.

    python benchmarks/texture_map_calibration.py

Ten training photos (every 50th of bsds500 from the first, six of them, at full size; every
20th of urban100 from the second, four, halved), each coded at levels 1-3 with
``--texture-map`` and decoded at realism 1. ``sampling.texture_map.ENERGY_GAIN`` was chosen
with it (2026-12-07): the mean band energy ratios of the two finest bands over the
original's near 1 (the validation photos are never used for this).
"""

from __future__ import annotations

import pathlib

import numpy as np

import cgdm_codec
from cgdm_codec import artefacts, pipeline
from cgdm_codec.container import parse
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import band_energy_ratios

ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train"


def main() -> None:
    files = list_images(ROOT / "bsds500")[::50][:6] + list_images(ROOT / "urban100")[1::20][:4]
    rows = []
    for p in files:
        img = load_reference(p, 1.0 if "bsds" in str(p) else 0.5)
        ref = to_rgb_array(img)
        for lv in (1, 2, 3):
            f = parse(cgdm_codec.encode(img, lv, base="av1", device="cpu", texture_map=True))
            out = pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"))
            r0 = pipeline.decode_file(f, DecodeSettings(device="cpu"))
            rows.append([*band_energy_ratios(out, ref), artefacts.edge_overshoot(out, ref),
                         artefacts.edge_overshoot(r0, ref), artefacts.flat_noise(out, ref)])
            print(p.name[:16], lv, np.round(rows[-1], 3), flush=True)
    print("mean band 1, band 2, overshoot r1, overshoot r0, flat:", np.round(np.mean(rows, axis=0), 3))
    print("per level:", [np.round(np.mean(rows[i::3], axis=0), 3).tolist() for i in range(3)])


if __name__ == "__main__":
    main()
