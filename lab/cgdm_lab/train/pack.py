"""Pack AV1 training pairs small enough to travel to a lent accelerator, and read them back.

``python -m cgdm_lab.train.pack --data DIR --out PACK`` writes, for crops of the training
pool (full and half-size photos, ``train.data.build_pool``):
- the original crop as a near-lossless AVIF (4:4:4, quality ``TRANSPORT_QUALITY``; about 45 dB
  PSNR on detailed photos, well above what any level restores to), and
- ``per_crop`` AV1 encodes of the *true* original crop at random qualities, exactly as the
  codec's AV1 base writes them (the decode of that file is the x~ a decoder sees),
plus ``index.json`` (file names and the AV1 quantiser of each encode). Crops sit on the
64-pixel superblock grid of their image and are 64-px multiples, so AV1's block
structure lines up as it does in a whole-image encode. A whole pool is ~1 GB as pixels;
packed it is ~45 MB. ``load_pack`` turns a pack into the ``PairPool`` the trainer uses.
"""

from __future__ import annotations

import argparse
import io
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .av1_pairs import DEFAULT_QUALITY_RANGE, PAIR_SPEED, PairPool
from .data import _load_rgb, build_pool, list_images

TRANSPORT_QUALITY = 92
INDEX_EVERY = 200
GRID = 64


def crop_positions(h: int, w: int, size: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``count`` distinct grid-aligned top-left corners of ``size`` crops inside (h, w)."""
    rows, cols = (h - size) // GRID + 1, (w - size) // GRID + 1
    if rows < 1 or cols < 1:
        return []
    cells = rng.permutation(rows * cols)[:count]
    return [(int(c // cols) * GRID, int(c % cols) * GRID) for c in cells]


def multiscale_pool(data: str | Path, sides: tuple[int, ...], min_side: int,
                    exclude: frozenset[str] = frozenset()) -> list[np.ndarray]:
    """Every photo under ``data`` (but those named in ``exclude``) at each long side in
    ``sides`` it is larger than, and once as it is when it is smaller than the largest.

    A photo downscaled several times over loses its JPEG traces and gains the dense detail
    of a camera original, which is what most users' files look like.
    """
    pool = []
    for path in list_images(data):
        if path.name in exclude or path.stem in exclude:
            continue
        with Image.open(path) as im:
            long_side = max(im.size)
        for side in sorted({min(s, long_side) for s in sides}, reverse=True):
            a = _load_rgb(path, side)
            if min(a.shape[:2]) >= min_side:
                pool.append(a)
    return pool


def _encode_job(job: tuple[np.ndarray, list[int], int]) -> tuple[bytes, list[bytes], list[int]]:
    from PIL import Image

    from cgdm_codec.base.av1 import encode_avif, inspect_payload
    from cgdm_codec.base.avif_file import split_avif

    rgb, qualities, speed = job
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "AVIF", quality=TRANSPORT_QUALITY, speed=6, subsampling="4:4:4",
                              range="full", max_threads=1)
    encodes = [encode_avif(rgb, q, speed, threads=1) for q in qualities]
    return buf.getvalue(), encodes, [inspect_payload(split_avif(a)) for a in encodes]


def pack(data: str | Path, out: str | Path, size: int = 256, pixels_per_crop: int = 4 * 256 * 256,
         per_crop: int = 3, quality_range: tuple[int, int] = DEFAULT_QUALITY_RANGE,
         seed: int = 0, workers: int = 2, speed: int = PAIR_SPEED, sides: tuple[int, ...] | None = None,
         exclude: frozenset[str] = frozenset()) -> int:
    """Write the pack; returns the number of crops. One crop per ``pixels_per_crop`` of each image;
    the AV1 encodes at libaom ``speed``. ``sides``: the long sides of ``multiscale_pool``
    (None: the full and half-size pool of ``train.data.build_pool``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if sides is None:
        pool = [img.permute(1, 2, 0).numpy() for img in build_pool(data, min_side=size)]
    else:
        pool = multiscale_pool(data, sides, size, exclude)
    rng = np.random.default_rng(seed)
    jobs = []
    for a in pool:
        h, w = a.shape[:2]
        for y, x in crop_positions(h, w, size, max(1, h * w // pixels_per_crop), rng):
            qs = [int(q) for q in rng.integers(quality_range[0], quality_range[1] + 1, per_crop)]
            jobs.append((np.ascontiguousarray(a[y:y + size, x:x + size]), qs, speed))
    jobs = [jobs[i] for i in rng.permutation(len(jobs))]  # any prefix of the pack is a fair sample
    index = resumed_index(out, len(jobs))
    with ProcessPoolExecutor(workers) as ex:
        for k, (orig, encodes, qindex) in enumerate(ex.map(_encode_job, jobs[len(index):], chunksize=8),
                                                    start=len(index)):
            (out / f"{k:05d}.avif").write_bytes(orig)
            names = []
            for j, enc in enumerate(encodes):
                names.append(f"{k:05d}-{j}.avif")
                (out / names[-1]).write_bytes(enc)
            index.append({"original": f"{k:05d}.avif", "decodes": names, "qindex": qindex})
            if len(index) % INDEX_EVERY == 0 or len(index) == len(jobs):
                write_index(out, {"size": size, "speed": speed, "sides": sides, "excluded": sorted(exclude),
                                  "jobs": len(jobs), "crops": index})
    return len(index)


def resumed_index(out: Path, total: int) -> list[dict]:
    """The crops an interrupted run of the same command already wrote (the jobs are drawn
    from the seed, so they are the same), or none."""
    path = out / "index.json"
    if not path.exists():
        return []
    done = json.loads(path.read_text())
    if done.get("jobs") != total:
        raise SystemExit(f"{out} holds a pack of other settings; give another --out")
    print(f"resuming after {len(done['crops'])} crops", flush=True)
    return done["crops"]


def write_index(out: Path, index: dict) -> None:
    """Rewritten as crops arrive, so a pack being built can already be trained on."""
    tmp = out / "index.json.tmp"
    tmp.write_text(json.dumps(index))
    tmp.replace(out / "index.json")
    return len(index)


def prefix(pack_dir: str | Path, out: str | Path, max_bytes: int) -> tuple[int, int]:
    """The pack's first crops (a fair sample: crops are packed in a seeded random order), as
    many as fit in ``max_bytes``, copied to ``out``: what a device call can carry beside the
    checkout. Returns (crops, bytes)."""
    import shutil

    src, out = Path(pack_dir), Path(out)
    index = json.loads((src / "index.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    kept, total = [], 0
    for crop in index["crops"]:
        files = [crop["original"], *crop["decodes"]]
        size = sum((src / f).stat().st_size for f in files)
        if total + size > max_bytes:
            break
        for f in files:
            shutil.copyfile(src / f, out / f)
        kept.append(crop)
        total += size
    write_index(out, {**index, "jobs": len(kept), "crops": kept, "prefix_of": index["jobs"]})
    return len(kept), total


def _decode(path: Path) -> np.ndarray:
    from cgdm_codec.base.av1 import decode_avif

    return np.ascontiguousarray(np.asarray(decode_avif(path.read_bytes()).convert("RGB")).transpose(2, 0, 1))


def load_pack(folder: str | Path, workers: int = 8) -> PairPool:
    """The pack's pairs as a ``PairPool`` (originals and decodes as uint8 (3, H, W))."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())["crops"]
    originals, decodes, source, qindex = [], [], [], []
    files = [folder / c["original"] for c in index]
    files += [folder / d for c in index for d in c["decodes"]]
    with ProcessPoolExecutor(workers) as ex:
        arrays = list(ex.map(_decode, files, chunksize=16))
    originals = [torch.from_numpy(a) for a in arrays[:len(index)]]
    rest = iter(arrays[len(index):])
    for k, c in enumerate(index):
        for q in c["qindex"]:
            decodes.append(torch.from_numpy(next(rest)))
            source.append(k)
            qindex.append(int(q))
    return PairPool(originals, decodes, source, qindex)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="the training photos (required unless --prefix-of)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--prefix-of", metavar="PACK", help="copy the first crops of PACK that fit in --max-mib "
                    "instead of packing photos (crops are in a seeded random order: any prefix is a fair sample)")
    ap.add_argument("--max-mib", type=float, default=20.0, help="with --prefix-of [default: 20]")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--per-crop", type=int, default=3)
    ap.add_argument("--pixels-per-crop", type=int, default=4 * 256 * 256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--av1-speed", type=int, default=PAIR_SPEED, choices=range(0, 11), metavar="0..10",
                    help=f"libaom speed of the AV1 encodes [default: {PAIR_SPEED}, what every shipped "
                         "generation was trained on; the codec's default effort encodes at 3 up to 4.2 MP]")
    ap.add_argument("--sides", type=int, nargs="+", default=None, metavar="PX",
                    help="long sides every photo is resized to (multiscale_pool); default: the full "
                         "and half-size pool, long side at most 1024")
    ap.add_argument("--exclude", default=None, metavar="FOLDER",
                    help="leave out the photos whose names (or stems) are in this folder: a held-out "
                         "validation set made from training photos (benchmarks/camera_set.py)")
    args = ap.parse_args(argv)
    if args.prefix_of:
        n, total = prefix(args.prefix_of, args.out, int(args.max_mib * 2**20))
        print(f"copied the first {n} crops of {args.prefix_of} into {args.out}: {total / 2**20:.1f} MiB")
        return
    if not args.data:
        ap.error("--data is required (or --prefix-of)")
    exclude = frozenset()
    if args.exclude:
        exclude = frozenset(p.stem for p in Path(args.exclude).iterdir())
    n = pack(args.data, args.out, args.size, args.pixels_per_crop, args.per_crop, workers=args.workers,
             speed=args.av1_speed, sides=tuple(args.sides) if args.sides else None, exclude=exclude)
    total = sum(p.stat().st_size for p in Path(args.out).iterdir())
    print(f"packed {n} crops into {args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
