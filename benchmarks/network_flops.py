"""FLOP per pixel of a diffusion generation's one-step decode (features + denoise), on one tile.

    python benchmarks/network_flops.py cgdm-av1-4 cgdm-av1-5 [--tile 256]

Counted by ``torch.utils.flop_counter`` (convolutions and matrix products, 2 FLOP per
multiply-add; the fixed filters of the Nyquist-null head are convolutions and count),
divided by the tile's pixels; the condition MLP is per tile, not per pixel, and left out.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.weights import weights_dir


def flop_per_pixel(name: str, tile: int) -> float:
    path = name if name.endswith(".safetensors") else weights_dir() / f"{name}.safetensors"
    model = Cgdm.from_weights(path).eval()
    unet = model.unet
    x = torch.zeros(1, 3, tile, tile)
    with torch.no_grad():
        cond = unet.condition(torch.tensor([999]), torch.zeros(1, model.cfg.syntax.length), torch.tensor([100]))
        with FlopCounterMode(display=False) as counter:
            unet.denoise(x, x, unet.consistency(x), cond)
    return counter.get_total_flops() / tile ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--tile", type=int, default=256)
    args = ap.parse_args()
    for name in args.weights:
        print(f"{name}: {flop_per_pixel(name, args.tile) / 1e3:.2f} kFLOP per pixel (tile {args.tile})")


if __name__ == "__main__":
    main()
