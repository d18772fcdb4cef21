"""Build the never-JPEG validation set: large training photos downscaled 4x, held out of training.

sunhays80 went through JPEG (4:2:0 chroma, 8x8 blocks) before anyone saw it, so decisions
taken on it alone can be wrong for camera files. These twelve photos (the largest of
``train/debian_wallpapers``, 2880-6028 px, licences in ``shared/datasets/README.md``) are
JPEGs too, but at a quarter of their size every JPEG trace is below a pixel: what remains
looks like a camera original. They are left out of every pack built with
``python -m cgdm_lab.train.pack --exclude OUT`` (generations before ``cgdm-av1-5`` saw
them at long sides 1024 and 512, so this set favours those). The PNGs are written outside
the repository.

    python benchmarks/camera_set.py ../shared/datasets/train/debian_wallpapers /tmp/camera12
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps

HELD_OUT = (
    "lomiri1604_Bridge_by_Sander_Klootwijk", "lomiri1604_Dragonfly_by_Bolly",
    "lomiri1604_Wine_by_Jakkub_Mede", "lomiri1604_aitzgorri_by_Aitzol_Berasategi",
    "lomiri1604_free_by_Peter_Nerlich", "lomiri1604_friends_by_Aitzol_Berasategi",
    "lomiri1604_greentock_by_Peter_Nerlich", "lomiri1604_life_by_Aitzol_Berasategi",
    "lomiri1604_picosdeeuropa_by_Aitzol_Berasategi", "lomiri1604_seeding_by_Clements_Engelhardt",
    "lomiri1604_sunset_by_Aitzol_Berasategi", "lomiri2004_Kleiber_by_Lukas_Baubkus",
)
FACTOR = 4


def build(source: Path, out: Path, factor: int = FACTOR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in HELD_OUT:
        path = next(source.glob(stem + ".*"))
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            small = im.resize((im.width // factor, im.height // factor), Image.Resampling.LANCZOS)
        written.append(out / f"{stem}.png")
        small.save(written[-1])
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="the debian_wallpapers folder")
    ap.add_argument("out", type=Path)
    ap.add_argument("--factor", type=int, default=FACTOR)
    args = ap.parse_args()
    for p in build(args.source, args.out, args.factor):
        with Image.open(p) as im:
            print(f"{p.name}: {im.width}x{im.height}")


if __name__ == "__main__":
    main()
