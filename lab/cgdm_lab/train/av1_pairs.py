"""Training pairs for the CGDM on the AV1 base: (original, AV1 decode, quantiser) per image.

AV1's block artefacts depend on where a block sits in the frame, so every pool image (the
full and the half-size copy of each training photo) is encoded *whole* by the AV1 backend,
never as crops; crops are taken afterwards at the same position from both images. Each image
gets ``per_image`` qualities drawn from ``quality_range``; the AV1 frame's ``base_q_idx``
(the value the decoder conditions on) is read from the payload. The decodes are cached
outside the repository, as one .npz next to the pool cache.

Any registered base without a network can be named (``base``): its backend codes each
image whole at fine qualities (or levels, for a backend without a fine scale) and its
``condition`` is what the pair records.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import build_pool

DEFAULT_QUALITY_RANGE = (0, 70)
#: libaom speed of the pairs every shipped generation was trained on (the codec's default
#: effort has since moved to 4, then 3: base.av1.speed_for).
PAIR_SPEED = 6


@dataclass
class PairPool:
    originals: list[torch.Tensor]  # (3, H, W) uint8
    decodes: list[torch.Tensor]  # (3, H, W) uint8, one per entry of ``source``
    source: list[int]  # index into ``originals`` of each decode
    qindex: list[int]  # AV1 base_q_idx of each decode


def _encode_one(job: tuple[np.ndarray, int, int, str]) -> tuple[np.ndarray, int]:
    """(x~, condition) of one whole image at one quality: exactly what the codec's decoder sees."""
    rgb, quality, speed, base = job
    if base == "av1":
        from cgdm_codec.base.av1 import decode_avif, encode_avif, inspect_payload
        from cgdm_codec.base.avif_file import split_avif

        avif = encode_avif(rgb, quality, speed)
        # Pillow decoding Pillow's own file is what the decoder does with the rebuilt wrapper,
        # which is byte-identical to it (tests/base/test_avif_file.py).
        return np.asarray(decode_avif(avif).convert("RGB")), inspect_payload(split_avif(avif))
    from cgdm_codec.base.registry import create

    codec = create(base)
    fine = quality if codec.record.fine_range is not None else None
    enc = codec.encode(rgb, quality if fine is None else codec.fine_level(fine), fine=fine)
    return codec.decode_rgb(enc.streams, rgb.shape[1], rgb.shape[0], enc.level), enc.condition


def build_pairs(root: str | Path, min_side: int = 128, per_image: int = 2,
                quality_range: tuple[int, int] | None = None, speed: int = PAIR_SPEED,
                workers: int = 2, seed: int = 0, cache_dir: str | Path | None = None,
                base: str = "av1") -> PairPool:
    """The pairs of every pool image; ``quality_range`` defaults to ``DEFAULT_QUALITY_RANGE``
    for AV1, the fine range (or the levels) of another ``base``; ``speed`` is AV1's."""
    from cgdm_codec.base.registry import backend

    record = backend(base)
    if quality_range is None:
        quality_range = DEFAULT_QUALITY_RANGE if base == "av1" else (record.fine_range or (1, 6))
    pool = build_pool(root, min_side=min_side, cache_dir=cache_dir)
    rng = np.random.default_rng(seed)
    lo, hi = quality_range
    jobs = [(i, int(q)) for i in range(len(pool)) for q in rng.integers(lo, hi + 1, per_image)]
    key = hashlib.sha256(repr((len(pool), [tuple(p.shape) for p in pool], jobs, speed,
                               int(pool[0].sum()))).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir or os.environ.get("CGDM_CACHE", Path.home() / ".cache" / "cgdm"))
    cache = cache_dir / f"{record.name}pairs-{key}.npz"  # av1pairs-...: the caches already built
    if cache.exists():
        with np.load(cache) as f:
            decodes = [f[f"d{k}"] for k in range(len(jobs))]
            qindex = f["qindex"].tolist()
    else:
        rgbs = [np.ascontiguousarray(pool[i].permute(1, 2, 0).numpy()) for i, _ in jobs]
        with ProcessPoolExecutor(workers) as ex:
            done = list(ex.map(_encode_one, [(rgbs[k], q, speed, base) for k, (_, q) in enumerate(jobs)],
                               chunksize=4))
        decodes = [d for d, _ in done]
        qindex = [q for _, q in done]
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, qindex=np.array(qindex), **{f"d{k}": d for k, d in enumerate(decodes)})
        os.replace(tmp, cache)
    return PairPool(pool, [torch.from_numpy(np.ascontiguousarray(d.transpose(2, 0, 1))) for d in decodes],
                    [i for i, _ in jobs], qindex)


def sample_pair_crops(pairs: PairPool, batch: int, size: int,
                      gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, x~) float batches in [0, 1] cropped at the same place, and their quantisers (B,)."""
    x = torch.empty(batch, 3, size, size, dtype=torch.uint8)
    xt = torch.empty_like(x)
    idx = torch.randint(len(pairs.decodes), (batch,), generator=gen).tolist()
    for b, k in enumerate(idx):
        orig, dec = pairs.originals[pairs.source[k]], pairs.decodes[k]
        _, h, w = orig.shape
        top = int(torch.randint(h - size + 1, (1,), generator=gen))
        left = int(torch.randint(w - size + 1, (1,), generator=gen))
        a = orig[:, top:top + size, left:left + size]
        d = dec[:, top:top + size, left:left + size]
        if bool(torch.randint(2, (1,), generator=gen)):
            a, d = a.flip(-1), d.flip(-1)
        x[b], xt[b] = a, d
    q = torch.tensor([pairs.qindex[k] for k in idx], dtype=torch.long)
    return x.float().div_(255.0), xt.float().div_(255.0), q
