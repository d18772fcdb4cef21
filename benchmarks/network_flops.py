"""FLOP per pixel of a diffusion generation's one-step decode (features + denoise), on one tile.

    python benchmarks/network_flops.py cgdm-av1-4 cgdm-av1-5 [--tile 256]
    python benchmarks/network_flops.py preset:small-av1 preset:restoration-av1

A name is shipped weights (or a .safetensors path), or ``preset:NAME`` for an untrained
network of a ``CgdmConfig`` preset (the one-pass candidates have no shipped weights).
Counted by ``torch.utils.flop_counter`` (convolutions and matrix products, 2 FLOP per
multiply-add; the fixed filters of the Nyquist-null head and of blur-pool are convolutions
and count; norms, gates and interpolation do not), divided by the tile's pixels; the
condition MLP is per tile, not per pixel, and left out.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from cgdm_codec.diffusion_config import CgdmConfig
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.weights import weights_dir

PRESET = "preset:"


def load(name: str) -> Cgdm:
    """Shipped weights by name or path, or an untrained preset (``preset:NAME``)."""
    if name.startswith(PRESET):
        return Cgdm(CgdmConfig.preset(name[len(PRESET):])).eval()
    path = name if name.endswith(".safetensors") else weights_dir() / f"{name}.safetensors"
    return Cgdm.from_weights(path).eval()


def network_flops(model: Cgdm, tile: int) -> float:
    """FLOP per pixel of one features + denoise call on a tile x tile input."""
    unet = model.unet
    x = torch.zeros(1, 3, tile, tile)
    with torch.no_grad():
        cond = unet.condition(torch.tensor([999]), torch.zeros(1, model.cfg.syntax.length), torch.tensor([100]))
        with FlopCounterMode(display=False) as counter:
            unet.denoise(x, x, unet.consistency(x), cond)
    return counter.get_total_flops() / tile ** 2


def flop_per_pixel(name: str, tile: int) -> float:
    return network_flops(load(name), tile)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="weights name or path, or preset:NAME")
    ap.add_argument("--tile", type=int, default=256)
    args = ap.parse_args()
    for name in args.weights:
        print(f"{name}: {flop_per_pixel(name, args.tile) / 1e3:.2f} kFLOP per pixel (tile {args.tile})")


if __name__ == "__main__":
    main()
