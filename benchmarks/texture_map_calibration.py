"""The texture map's calibration on training photos: band energy, edge overshoot, flat-area
energy and PSNR cost of realism-1 decodes of files written with a texture map.

    python benchmarks/texture_map_calibration.py

27 training photos in two groups, each coded at levels 1-3 with ``--texture-map`` and
decoded at realism 0 and 1: "jpeg" (fourteen BSDS500 photos at full size, every 50th from
the first and from the 25th, and three Urban100 photos halved, every 20th from the second),
whose fine bands went through JPEG like sunhays80's, and "wallpapers" (ten of
``train/debian_wallpapers`` at a quarter of their size, every 5th from the first and from
the third of those the never-JPEG validation set leaves, ``benchmarks/camera_set.py``),
which look like camera originals. ``sampling.texture_map.ENERGY_GAIN`` was chosen on ten of
the "jpeg" photos (six BSDS500, four Urban100 halved; 2026-12-07): mean band energy near 1.
What the stage gives on all 27 (flat-area energy as ``benchmarks/realism.py`` reports it,
the median over photos) is in docs/realism.md ("Calibration"). The validation photos are
never used for this.

    python benchmarks/texture_map_calibration.py --kid [--measured]

``--kid`` adds, per level over all 27 photos, KID x1000 of the realism-1 decodes' 128-px
patches against the originals' (``benchmarks/realism.py``'s measure; the feature network
is a training dependency). ``--measured`` writes the original's measure as the map instead
of the symbols fitted to the decoder (``sampling.texture_map.fitted_symbols``), as the
encoder did before 2026-12-07's fitting.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

import cgdm_codec
from camera_set import HELD_OUT
from cgdm_codec import artefacts, pipeline
from cgdm_codec.container import parse
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import band_energy_ratios, psnr
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array

ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train"
LEVELS = (1, 2, 3)
COLUMNS = "band 1, band 2, overshoot r1, overshoot r0, PSNR cost (dB), flat (median)"


def photos() -> dict[str, list[tuple[pathlib.Path, float]]]:
    bsds = list_images(ROOT / "bsds500")
    wallpapers = [p for p in list_images(ROOT / "debian_wallpapers") if p.stem not in HELD_OUT]
    return {"jpeg": [(p, 1.0) for p in bsds[::50][:6] + bsds[25::50][:8]]
                    + [(p, 0.5) for p in list_images(ROOT / "urban100")[1::20][:4]],
            "wallpapers": [(p, 0.25) for p in (wallpapers[::5] + wallpapers[2::5])[:10]]}


def measure(path: pathlib.Path, scale: float, level: int, patches: dict | None = None) -> list[float]:
    img = load_reference(path, scale)
    ref = to_rgb_array(img)
    f = parse(cgdm_codec.encode(img, level, base="av1", device="cpu", texture_map=True))
    out = pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"))
    r0 = pipeline.decode_file(f, DecodeSettings(device="cpu"))
    if patches is not None:
        from realism import patches as cut

        patches.setdefault((level, "decode"), []).extend(cut(out))
        patches.setdefault((level, "original"), []).extend(cut(ref))
    return [*band_energy_ratios(out, ref), artefacts.edge_overshoot(out, ref), artefacts.edge_overshoot(r0, ref),
            psnr(ref, r0) - psnr(ref, out), artefacts.flat_noise(out, ref)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kid", action="store_true", help="KID x1000 per level over all photos")
    ap.add_argument("--measured", action="store_true", help="the original's measure as the map, not fitted")
    args = ap.parse_args()
    if args.measured:
        from cgdm_codec.sampling import texture_map

        texture_map.FIT_MAX_PIXELS = 0
    patches: dict | None = {} if args.kid else None
    for group, files in photos().items():
        rows = {lv: [] for lv in LEVELS}
        for p, scale in files:
            for lv in LEVELS:
                rows[lv].append(measure(p, scale, lv, patches))
                print(group, p.name[:20], lv, np.round(rows[lv][-1], 3), flush=True)
        print(f"{group} ({len(files)} photos), per level: {COLUMNS}")
        for lv in LEVELS:
            r = np.array(rows[lv])
            print(f"  level {lv}:", np.round([*r[:, :5].mean(axis=0), np.median(r[:, 5])], 3).tolist())
    if patches is not None:
        from realism import PooledFeatures, kid, kid_spread

        pooled = PooledFeatures()
        for lv in LEVELS:
            a, b = pooled(patches[(lv, "decode")]), pooled(patches[(lv, "original")])
            print(f"level {lv}: KID x1000 {1000 * kid(a, b):.1f} (sd {1000 * kid_spread(a, b, 100):.1f}), "
                  f"{len(b)} patches", flush=True)


if __name__ == "__main__":
    main()
