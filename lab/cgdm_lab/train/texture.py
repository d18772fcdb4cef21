"""Fit the texture synthesis model (``sampling.texture``) of a realism network on training photos.

    python -m cgdm_lab.train.texture --data ../shared/datasets/train \\
        --weights cgdm_codec/weights/cgdm-av1-3r.safetensors --images 48 --levels 1 2 3 4 5 --write

Each photo (halved, as the evaluation does, then centre-cropped to at most --crop px) is
coded by the real encoder (AV1 base, default effort) at each level and decoded at realism
1 by the realism network *without* texture. Per band, a least-squares fit on pixels
sampled on a grid maps the decode's texture energies and the quantiser
(``sampling.texture.features``) to the energy the band lacks (the original's texture
energy minus the decode's, floored at 0). Then each band's gain, a line in the quantiser, is
set so that the band energy of decode + texture over the original's
(``quality.band_energy_ratios``, the measure of ``benchmarks/realism.py``), averaged over
the photos of each level, is 1.0 at every level (``calibrate``). ``--write`` stores the
model, with how it was made, under ``texture`` in the weights' manifest.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np

from cgdm_codec.options import DecodeSettings
from cgdm_codec.sampling.texture import (LUMA, TextureConfig, atrous_bands, band_terms, edge_mask, features, noise_rows,
                                texture_energy, texture_of)

GRID = 4  # sample every 4th pixel each way for the fit
TARGET = 1.0


def pairs(data: Path, weights: Path, images: int, crop: int, levels: list[int]):
    """(original uint8, decode float (3, H, W) without texture, qindex, seed) per photo and level."""
    from PIL import Image, ImageOps

    import cgdm_codec
    from cgdm_codec import generations, pipeline
    from cgdm_codec.container import parse
    from .data import list_images

    paths = list_images(data)
    pick = [paths[round(i * (len(paths) - 1) / max(1, images - 1))] for i in range(images)]
    for path in pick:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im = im.resize((max(64, im.width // 2), max(64, im.height // 2)), Image.Resampling.LANCZOS)
            w, h = min(crop, im.width), min(crop, im.height)
            left, top = (im.width - w) // 2, (im.height - h) // 2
            im = im.crop((left, top, left + w, top + h))
        ref = np.asarray(im)
        for lv in levels:
            f = parse(cgdm_codec.encode(im, lv, base="av1", device="cpu"))
            if not f.diffusion:
                continue
            out = pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"), texture=False)
            condition = generations.load_bundle(f.base_codec).base.condition(f.base_streams, f.quality)
            yield ref, out.transpose(2, 0, 1).astype(np.float32) / 255.0, condition, f.seed


def fit_coefficients(samples: list, cfg: TextureConfig) -> tuple[tuple[float, ...], ...]:
    """Least squares of the energy each band lacks (original's local mean square minus the
    decode's, floored at 0) on the decode's energy features, pixels on a grid."""
    xs, ys = [], [[] for _ in range(cfg.bands)]
    sel = (slice(8, -8, GRID), slice(8, -8, GRID))
    for ref, dec, q, _ in samples:
        luma_d = np.tensordot(LUMA, dec, axes=1)
        luma_o = np.tensordot(LUMA, ref.transpose(2, 0, 1).astype(np.float32) / 255.0, axes=1)
        feats = features(luma_d, q, cfg)  # E_1, E_2, E_3 first: the decode's texture energies
        xs.append(feats[sel].reshape(-1, feats.shape[-1]))
        for k, bo in enumerate(atrous_bands(luma_o, cfg.bands)):
            lacking = np.maximum(texture_energy(bo, k, cfg) - feats[..., k], 0.0)
            ys[k].append(lacking[sel].reshape(-1))
    x = np.concatenate(xs).astype(np.float64)
    return tuple(tuple(float(c) for c in np.linalg.lstsq(x, np.concatenate(y), rcond=None)[0]) for y in ys)


def _set(values: tuple[float, ...], k: int, value: float) -> tuple[float, ...]:
    """``values`` with entry ``k`` replaced by ``value`` (rounded, as the manifest keeps it)."""
    return tuple(round(float(value), 4) if j == k else v for j, v in enumerate(values))


def calibrate(samples: list, cfg: TextureConfig, rounds: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per band, a gain and its slope in the quantiser (``TextureConfig.gain``, ``gain_q``)
    that bring *each level's* mean band energy ratio to TARGET.

    Why per level: the aim is a ratio within 0.9-1.1 at every level. One gain per band,
    calibrated on the mean over levels, left the second band at its floor (levels 3-5 had
    enough without it) while level 1 lacked 14 % of it. So each level's gain is found by
    bisection on that level's photos (their quantiser tells the levels apart: one AV1 qindex
    per level), and a line in qindex / 255 is fitted through those gains; bands interact a
    little, so this runs ``rounds`` times with the other bands at their lines."""
    groups: dict[int, list] = {}
    for ref, dec, q, seed in samples:
        luma = np.tensordot(LUMA, dec, axes=1)
        groups.setdefault(q, []).append(
            (ref, dec, band_terms(luma, noise_rows(seed, cfg.period, 0, *luma.shape), q, cfg), q))
    flat = (0.0,) * cfg.bands
    cfg = replace(cfg, gain=(1.0,) * cfg.bands, gain_q=flat)
    for _ in range(rounds):
        for k in range(cfg.bands):
            xs, ys = [], []
            for q, parts in groups.items():
                gain = list(cfg.gains(q))
                lo, hi = 0.0, 8.0
                for _ in range(14):
                    gain[k] = (lo + hi) / 2
                    if mean_band_ratios(parts, replace(cfg, gain=tuple(gain), gain_q=flat))[k] < TARGET:
                        lo = gain[k]
                    else:
                        hi = gain[k]
                xs.append(q / 255.0)
                ys.append(gain[k])
            slope, level = np.polyfit(xs, ys, 1) if len(xs) > 1 else (0.0, ys[0])
            cfg = replace(cfg, gain=_set(cfg.gain, k, level), gain_q=_set(cfg.gain_q, k, slope))
    for q, parts in groups.items():
        print(f"qindex {q}: gains {np.round(cfg.gains(q), 3)}, band energy ratios "
              f"{np.round(mean_band_ratios(parts, cfg), 3)}")
    return cfg.gain, cfg.gain_q


def textured_decode(dec: np.ndarray, terms: list, cfg: TextureConfig, qindex: int) -> np.ndarray:
    """decode + texture at realism 1 as uint8 (H, W, 3), from precomputed ``band_terms``."""
    tex = texture_of(terms, cfg, qindex)
    if cfg.edge_mask:
        tex *= edge_mask(np.tensordot(LUMA, dec, axes=1))
    return np.rint(np.clip(dec + tex, 0.0, 1.0).transpose(1, 2, 0) * 255).astype(np.uint8)


def mean_band_ratios(parts: list, cfg: TextureConfig) -> np.ndarray:
    from cgdm_codec.quality import band_energy_ratios

    return np.mean([band_energy_ratios(textured_decode(dec, terms, cfg, q), ref, cfg.bands)
                    for ref, dec, terms, q in parts], axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True,
                    help="the installed realism network's .safetensors (its manifest gets the model)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3, 4])
    ap.add_argument("--cache", type=Path, default=None,
                    help="an .npz that keeps the decodes between fits (made if missing)")
    ap.add_argument("--amplify", type=float, nargs="*", default=[0.0, 0.0],
                    help="per band, the share of the added energy that amplifies the decode's band")
    ap.add_argument("--max-gain", type=float, default=2.0, help="the most a band is amplified")
    ap.add_argument("--edge-mask", action="store_true", help="no texture within a few px of strong edges")
    ap.add_argument("--write", action="store_true", help="store the model in the weights' manifest")
    ap.add_argument("--for", dest="generation", default=None, metavar="WEIGHTS",
                    help="with --write: store it for files of these diffusion weights only (texture_for); "
                         "encode them with CGDM_DIFFUSION_WEIGHTS set to those weights")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.cache and args.cache.is_file():
        with np.load(args.cache, allow_pickle=False) as z:
            n = int(z["n"])
            samples = [(z[f"ref{i}"], z[f"dec{i}"], int(z[f"q{i}"]), int(z[f"seed{i}"])) for i in range(n)]
    else:
        samples = list(pairs(args.data, args.weights, args.images, args.crop, args.levels))
        if args.cache:
            np.savez(args.cache, n=len(samples), **{f"{k}{i}": v for i, s in enumerate(samples)
                                                    for k, v in zip(("ref", "dec", "q", "seed"), s)})
    if not samples:
        print("error: no diffusion decodes to fit on (every encode chose the base codec alone)", file=sys.stderr)
        return 1
    print(f"{len(samples)} decodes in {time.time() - t0:.0f} s")
    cfg = TextureConfig(amplify=tuple(args.amplify), max_gain=args.max_gain, edge_mask=args.edge_mask)
    cfg = replace(cfg, coef=fit_coefficients(samples, cfg))
    fitted = {"command": "python -m cgdm_lab.train.texture " + " ".join(argv or sys.argv[1:]),
              "data": f"{args.images} photos of {args.data.name} (halved, centre {args.crop} px), "
                      f"levels {args.levels}, {len(samples)} diffusion decodes",
              "target_band_energy": TARGET}
    gain, gain_q = calibrate(samples, cfg)
    cfg = replace(cfg, gain=gain, gain_q=gain_q, fitted=fitted)
    print(json.dumps(cfg.to_dict(), indent=1))
    if args.write:
        manifest = args.weights.with_suffix(".json")
        d = json.loads(manifest.read_text())
        if args.generation:
            d.setdefault("texture_for", {})[args.generation] = cfg.to_dict()
        else:
            d["texture"] = cfg.to_dict()
        manifest.write_text(json.dumps(d, indent=2) + "\n")
        print(f"wrote the texture model into {manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
