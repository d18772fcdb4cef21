"""An in-memory pool of training photographs and a cheap random-crop sampler.

Decoding hundreds of JPEGs every step would dominate a CPU training step, so every image is
decoded once, shrunk so its long side is at most ``max_side`` (which also hides most of the
JPEG artefacts the sources carry), and kept as uint8. A half-resolution copy of each image is
added, as in the CGDM paper's augmentation. The pool is cached as one .npz file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(root: str | Path) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _load_rgb(path: Path, max_side: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = max_side / max(im.size)
        if scale < 1:
            im = im.resize(
                (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                Image.Resampling.LANCZOS,
            )
        return np.asarray(im, dtype=np.uint8)


def _half(a: np.ndarray) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(a)
    return np.asarray(im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS))


def build_pool(root: str | Path, max_side: int = 1024, min_side: int = 128,
               cache_dir: str | Path | None = None) -> list[torch.Tensor]:
    """Images as (3, H, W) uint8 tensors, full and half resolution, each side >= min_side."""
    paths = list_images(root)
    if not paths:
        raise FileNotFoundError(f"no images under {root}")
    key = hashlib.sha256(
        ("|".join(f"{p}:{p.stat().st_size}" for p in paths) + f"|{max_side}|{min_side}").encode()
    ).hexdigest()[:16]
    cache_dir = Path(cache_dir or os.environ.get("CGDM_CACHE", Path.home() / ".cache" / "cgdm"))
    cache = cache_dir / f"pool-{key}.npz"
    if cache.exists():
        with np.load(cache) as f:
            arrays = [f[k] for k in sorted(f.files, key=lambda s: int(s[1:]))]
    else:
        arrays = []
        for p in paths:
            a = _load_rgb(p, max_side)
            arrays.append(a)
            h = _half(a)
            if min(h.shape[:2]) >= min_side:
                arrays.append(h)
        arrays = [a for a in arrays if min(a.shape[:2]) >= min_side]
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"a{i}": a for i, a in enumerate(arrays)})
        os.replace(tmp, cache)
    return [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))) for a in arrays]


def sample_crops(pool: list[torch.Tensor], batch: int, size: int,
                 gen: torch.Generator) -> torch.Tensor:
    """A float batch (B, 3, size, size) in [0, 1] of random crops with random flips."""
    out = torch.empty(batch, 3, size, size, dtype=torch.uint8)
    idx = torch.randint(len(pool), (batch,), generator=gen)
    for b, i in enumerate(idx.tolist()):
        img = pool[i]
        _, h, w = img.shape
        top = int(torch.randint(h - size + 1, (1,), generator=gen))
        left = int(torch.randint(w - size + 1, (1,), generator=gen))
        crop = img[:, top:top + size, left:left + size]
        if bool(torch.randint(2, (1,), generator=gen)):
            crop = crop.flip(-1)
        out[b] = crop
    return out.float().div_(255.0)
