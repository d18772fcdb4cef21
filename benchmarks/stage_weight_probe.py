"""Would a per-block strength for the diffusion stage pay? An upper bound, before any format.

    python benchmarks/stage_weight_probe.py /tmp/camera12 --out results/camera12/stage-weight-probe.json
    python benchmarks/stage_weight_probe.py ../shared/datasets/val/sunhays80 --limit 12 --downscale 0.5 \
        --out results/sunhays80/stage-weight-probe-12.json

The idea (like the on/off and strength flags of AV1's and VVC's loop filters): the encoder
sends, per block, a weight w from a small set, and the decoder outputs B + w (N - B), with
B the base-only decode and N the diffusion stage's. Each photo is coded at every level by
``cgdm encode --diffusion`` (default effort, the newest generation); per block the weight
nearest the original in squared error is chosen (the encoder's best case); the side
information is charged at the empirical entropy of the chosen symbols plus 2 bytes. Two
figures per setting: the PSNR the weights add per level, and the BD-rate (PSNR) of the
weighted decode against the file's own decode, per photo over its levels, then the mean.
``free`` is the bound with continuous per-channel weights and no bytes charged.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import cgdm_codec
from cgdm_lab.evaluation.bdrate import bd_rate
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array

SETTINGS = {"64px 0/1": (64, (0.0, 1.0)), "64px 0/.5/1/1.5": (64, (0.0, 0.5, 1.0, 1.5)),
            "128px 0..1.5 by .25": (128, tuple(np.arange(7) * 0.25))}


def _blocks(x: np.ndarray, cell: int) -> np.ndarray:
    h, w = (s - s % cell for s in x.shape[:2])
    return x[:h, :w].reshape(h // cell, cell, w // cell, cell, 3)


def _outside(error: np.ndarray, change: np.ndarray, e: np.ndarray, d: np.ndarray) -> float:
    """The squared error of the file's decode outside the whole cells (edge strips keep w = 1)."""
    return float(((error - change) ** 2).sum() - ((e - d) ** 2).sum())


def chosen(error: np.ndarray, change: np.ndarray, cell: int, weights: tuple[float, ...]) -> tuple[np.ndarray, float]:
    """The weight index per block nearest the original (error = X - B, change = N - B), and
    the squared error left over the whole image."""
    e, d = _blocks(error, cell), _blocks(change, cell)
    cost = np.stack([((e - w * d) ** 2).sum(axis=(1, 3, 4)) for w in weights])
    return cost.argmin(axis=0), _outside(error, change, e, d) + float(cost.min(axis=0).sum())


def side_bits(symbols: np.ndarray, k: int) -> float:
    counts = np.bincount(symbols.ravel(), minlength=k) + 0.5
    return float(-np.log2(counts[symbols.ravel()] / counts.sum()).sum() + 16)


def free_bound(error: np.ndarray, change: np.ndarray, cell: int) -> float:
    """Squared error with each block's and channel's least-squares weight (0..2), no bytes."""
    e, d = _blocks(error, cell), _blocks(change, cell)
    w = np.clip((d * e).sum(axis=(1, 3), keepdims=True) / ((d * d).sum(axis=(1, 3), keepdims=True) + 1e-9), 0, 2)
    return _outside(error, change, e, d) + float(((e - w * d) ** 2).sum())


def psnr_of(sq: float, n: int) -> float:
    return float(10 * np.log10(255.0 ** 2 * n / sq))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--downscale", type=float, default=1.0)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    for path in list_images(args.folder)[:args.limit]:
        img = load_reference(path, args.downscale)
        x = to_rgb_array(img).astype(np.float64)
        for lv in args.levels:
            data = cgdm_codec.encode(img, lv, diffusion=True, device="cpu")
            n_dec = np.asarray(cgdm_codec.decode(data, device="cpu"), dtype=np.float64)
            b_dec = np.asarray(cgdm_codec.decode(data, base_only=True, device="cpu"), dtype=np.float64)
            error, change, n = x - b_dec, n_dec - b_dec, x.size
            row = dict(image=path.name, level=lv, bits=8 * len(data), pixels=img.width * img.height,
                       psnr=psnr_of(((error - change) ** 2).sum(), n), base_psnr=psnr_of((error ** 2).sum(), n))
            for name, (cell, weights) in SETTINGS.items():
                pick, sq = chosen(error, change, cell, weights)
                row[name] = dict(psnr=psnr_of(sq, n), side_bits=side_bits(pick, len(weights)),
                                 histogram=np.bincount(pick.ravel(), minlength=len(weights)).tolist())
            row["free"] = dict(psnr=psnr_of(free_bound(error, change, 64), n), side_bits=0.0)
            rows.append(row)
            print(path.name[:28], lv, f"{row['psnr']:.3f}",
                  " ".join(f"{k}: {row[k]['psnr'] - row['psnr']:+.3f} dB" for k in (*SETTINGS, "free")), flush=True)
    summary = {}
    for name in (*SETTINGS, "free"):
        gains = {lv: float(np.mean([r[name]["psnr"] - r["psnr"] for r in rows if r["level"] == lv])) for lv in args.levels}
        bds = []
        for image in dict.fromkeys(r["image"] for r in rows):
            mine = [r for r in rows if r["image"] == image]
            bpp = [r["bits"] / r["pixels"] for r in mine]
            bpp_w = [(r["bits"] + r[name]["side_bits"]) / r["pixels"] for r in mine]
            bd = bd_rate(bpp, [r["psnr"] for r in mine], bpp_w, [r[name]["psnr"] for r in mine])
            if bd is not None and np.isfinite(bd):
                bds.append(bd)
        summary[name] = dict(psnr_gain_by_level=gains, bd_rate_psnr=float(np.mean(bds)), photos=len(bds))
        print(f"{name:22s} BD-rate {summary[name]['bd_rate_psnr']:+.2f} % (PSNR, {len(bds)} photos); dB by level",
              " ".join(f"{g:+.3f}" for g in gains.values()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(command=vars(args) | {"folder": str(args.folder), "out": str(args.out)},
                                        summary=summary, rows=rows), indent=1, default=str))


if __name__ == "__main__":
    main()
