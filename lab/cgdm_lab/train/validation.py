"""A validation curve for training: held-out photos, AV1-coded once, decoded by the model.

The training loss is measured on the crops it learns from; a generation is chosen on
photos it never saw, by the fidelity it reaches *and* by the artefacts it paints
(``cgdm_codec.artefacts``): a loss that falls while a period-2 grid grows is caught here,
not after shipping. Each photo's central crop is coded at a few AV1 qualities (the same
encoder the codec runs), and every validation decodes it with one fixed noise draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cgdm_codec.artefacts import flat_noise, period2_ratio
from cgdm_codec.models.syntax import quantize
from cgdm_codec.sampling.ddim import DDIMScheduler
from cgdm_codec.sampling.unrolled import unrolled_sample
from .data import list_images
from .pack import GRID
DEFAULT_QUALITIES = (10, 35, 60)  # Pillow AVIF qualities: about levels 1, 3 and 5


@dataclass
class ValidationSet:
    originals: torch.Tensor  # (N, 3, S, S) float in [0, 1]
    decodes: torch.Tensor  # (N, 3, S, S) float in [0, 1], the AV1 decode of each original
    qindex: torch.Tensor  # (N,) the AV1 quantiser of each decode


def central_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` crop nearest the centre on the 64-px superblock grid."""
    h, w = rgb.shape[:2]
    top, left = (max(0, (s - size) // 2) // GRID * GRID for s in (h, w))
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def build_validation(folder: str | Path, size: int = 256, qualities: tuple[int, ...] = DEFAULT_QUALITIES,
                     speed: int = 3, limit: int | None = None) -> ValidationSet:
    """Pairs of every photo in ``folder`` (at least ``size`` px a side) at each quality."""
    from PIL import Image

    from cgdm_codec.base.av1 import decode_avif, encode_avif, inspect_payload
    from cgdm_codec.base.avif_file import split_avif

    originals, decodes, qindex = [], [], []
    for path in list_images(folder)[:limit]:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        if min(rgb.shape[:2]) < size:
            continue
        crop = central_crop(rgb, size)
        for q in qualities:
            avif = encode_avif(crop, q, speed, threads=1)
            originals.append(crop)
            decodes.append(np.asarray(decode_avif(avif).convert("RGB")))
            qindex.append(inspect_payload(split_avif(avif)))
    if not originals:
        raise FileNotFoundError(f"no photo of at least {size} px a side under {folder}")

    def batch(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)

    return ValidationSet(batch(originals), batch(decodes), torch.tensor(qindex, dtype=torch.long))


def _uint8(x01: torch.Tensor) -> np.ndarray:
    return x01.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


@torch.no_grad()
def validate(model, scheduler: DDIMScheduler, vs: ValidationSet, steps: int, batch: int = 6,
             seed: int = 0) -> dict[str, float]:
    """Mean PSNR gain over the AV1 decode (dB), PSNR, period-2 ratio and flat-area noise.

    ``model`` is a ``models.cgdm.Cgdm`` (the EMA weights, on the CPU or its device).
    """
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(vs.originals.shape, generator=gen)
    psnr, gain, p2, flat = [], [], [], []
    for i in range(0, len(vs.qindex), batch):
        x = vs.originals[i:i + batch].to(device)
        xt = vs.decodes[i:i + batch].to(device)
        q = vs.qindex[i:i + batch].to(device)
        s = quantize(model.syntax(x * 2 - 1, xt * 2 - 1), model.cfg.syntax.symbol_range, straight_through=False)
        out = (unrolled_sample(model.unet, scheduler, noise[i:i + batch].to(device), xt * 2 - 1, s, q, steps,
                               grad_steps=0).float() + 1) / 2
        out = out.clamp(0, 1).mul(255).round().div(255)
        for o, ref, base in zip(out.cpu(), x.cpu(), xt.cpu()):
            mse, mse_base = (o - ref).pow(2).mean(), (base - ref).pow(2).mean()
            psnr.append(float(-10 * torch.log10(mse.clamp_min(1e-10))))
            gain.append(float(10 * torch.log10(mse_base.clamp_min(1e-10) / mse.clamp_min(1e-10))))
            o8, r8 = _uint8(o), _uint8(ref)
            p2.append(period2_ratio(o8))
            flat.append(flat_noise(o8, r8))
    return {"val_psnr": float(np.mean(psnr)), "val_gain": float(np.mean(gain)),
            "val_period2": float(np.median(p2)), "val_flat": float(np.mean(flat))}
