"""Does the texture map's fit matter on large photos? The measured map against the fitted one above 4.2 MP.

    python benchmarks/texture_map_large.py ../shared/datasets/train/debian_wallpapers \
        --out results/camera12/texture-map-fit-large.json

The photos are three of the never-JPEG set's held-out originals (``benchmarks/camera_set.py``),
downscaled by less than that set's 4x so that they stay above ``FIT_MAX_PIXELS`` (7.8-10 MP;
at these factors some JPEG structure may survive). Each is encoded with ``--texture-map`` at
the default effort three times per level: with the measured symbols (what the default effort
wrote above the limit before 2026-12-08), fitted on windows (``texture_map.fit_windows``,
what it writes now) and with the fit of the whole photo forced on (what ``--effort max``
writes), then decoded at realism 1. Per encode: flat-area energy and the two finest bands' energy against the
original (``artefacts.flat_noise``, ``quality.band_energy_ratios``), bytes and encode seconds.
``--crops FOLDER``: per photo at the first level, original | measured | fitted on the 192-px
window where the two decodes' fine bands differ most (where the fit changed the picture),
enlarged twice.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import cgdm_codec
from cgdm_codec.artefacts import flat_noise
from cgdm_codec.quality import band_energy_ratios
from cgdm_codec.sampling import texture_map

PHOTOS = {"lomiri2004_Kleiber_by_Lukas_Baubkus": 0.7, "lomiri1604_seeding_by_Clements_Engelhardt": 0.75,
          "lomiri1604_sunset_by_Aitzol_Berasategi": 0.8}
#: ``--more``: the never-JPEG set's other nine originals, each downscaled by the largest of
#: 0.7 and what leaves it 4.6 MP (above ``FIT_MAX_PIXELS``).
MORE = ("lomiri1604_Bridge_by_Sander_Klootwijk", "lomiri1604_Dragonfly_by_Bolly", "lomiri1604_Wine_by_Jakkub_Mede",
        "lomiri1604_aitzgorri_by_Aitzol_Berasategi", "lomiri1604_free_by_Peter_Nerlich",
        "lomiri1604_friends_by_Aitzol_Berasategi", "lomiri1604_greentock_by_Peter_Nerlich",
        "lomiri1604_life_by_Aitzol_Berasategi", "lomiri1604_picosdeeuropa_by_Aitzol_Berasategi")


def more_factor(folder: Path, name: str) -> float:
    with Image.open(folder / f"{name}.jpg") as im:
        return max(0.7, (4.6e6 / (im.width * im.height)) ** 0.5)


def load(folder: Path, name: str, factor: float) -> Image.Image:
    im = Image.open(folder / f"{name}.jpg").convert("RGB")
    return im.resize((round(im.width * factor) // 2 * 2, round(im.height * factor) // 2 * 2), Image.LANCZOS)


def changed_box(a: np.ndarray, b: np.ndarray, size: int = 192) -> tuple[int, int, int, int]:
    """The size-px window (on a 32-px grid) where two decodes' finest bands differ most."""
    from cgdm_codec.artefacts import block_means, fine_band, luma

    diff = block_means(np.abs(fine_band(luma(a)) - fine_band(luma(b))), 32)
    k = size // 32
    sums = np.lib.stride_tricks.sliding_window_view(diff, (k, k)).sum(axis=(2, 3))
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(x) * 32, int(y) * 32, int(x) * 32 + size, int(y) * 32 + size


MODES = ("measured", "windowed", "fitted")


def measure(img: Image.Image, original: np.ndarray, level: int, mode: str, keep: dict | None = None) -> dict:
    limit, share = texture_map.FIT_MAX_PIXELS, texture_map.WINDOW_SHARE
    texture_map.FIT_MAX_PIXELS = 1 << 40 if mode == "fitted" else 0
    texture_map.WINDOW_SHARE = share if mode == "windowed" else 0.0
    try:
        t0 = time.perf_counter()
        data = cgdm_codec.encode(img, level, texture_map=True, device="cpu")
        seconds = time.perf_counter() - t0
    finally:
        texture_map.FIT_MAX_PIXELS, texture_map.WINDOW_SHARE = limit, share
    decoded = np.asarray(cgdm_codec.decode(data, realism=1.0, device="cpu"))
    if keep is not None:
        keep[mode] = decoded
    return dict(flat=flat_noise(decoded, original), bands=band_energy_ratios(decoded, original)[:2],
                bytes=len(data), encode_s=seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="train/debian_wallpapers (the held-out originals)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--crops", type=Path, default=None, help="folder for the crops (one PNG per photo)")
    ap.add_argument("--more", action="store_true", help="the other nine held-out originals instead of the three")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = ap.parse_args()
    modes = [m for m in MODES if m in args.modes]
    photos = {name: more_factor(args.folder, name) for name in MORE} if args.more else PHOTOS
    rows = []
    for name, factor in photos.items():
        img = load(args.folder, name, factor)
        original = np.asarray(img)
        for level in args.levels:
            keep: dict = {} if args.crops is not None and level == args.levels[0] else None
            row = dict(image=name, size=img.size, level=level,
                       **{mode: measure(img, original, level, mode, keep) for mode in modes})
            if keep:
                from cgdm_lab.evaluation.crops import crop_grid

                box = changed_box(keep["measured"], keep[modes[-1]])
                panels = [(original, "original")] + [(keep[m], f"{m} map, q{level}, realism 1") for m in modes]
                args.crops.mkdir(parents=True, exist_ok=True)
                crop_grid([panels], boxes=[box], size=192, zoom=2).save(
                    args.crops / f"texture-map-fit-large-{'-'.join(modes)}-{name}.png")
                row["crop_box"] = box
            rows.append(row)
            print(f"{name[:28]:28s} {img.width}x{img.height} q{level} ({' / '.join(modes)}): flat "
                  + " / ".join(f"{row[m]['flat']:.2f}" for m in modes) + ", band 1 "
                  + " / ".join(f"{row[m]['bands'][0]:.2f}" for m in modes) + ", band 2 "
                  + " / ".join(f"{row[m]['bands'][1]:.2f}" for m in modes) + ", encode "
                  + " / ".join(f"{row[m]['encode_s']:.1f}" for m in modes) + " s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(command=f"python benchmarks/texture_map_large.py {args.folder} --levels "
                                                 f"{' '.join(map(str, args.levels))} --modes {' '.join(modes)}"
                                                 + (" --more" if args.more else "") + f" --out {args.out}",
                                        rows=rows), indent=1))


if __name__ == "__main__":
    main()
