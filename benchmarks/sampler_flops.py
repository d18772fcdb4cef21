"""The diffusion stage's achieved GFLOP/s, next to the peak of one large convolution.

    python benchmarks/sampler_flops.py --size 768x512 [--decoder original|newest] [--repeat 2]

In one process, with the shipped learned-base weights: the U-Net's floating-point work for
one tile batch is counted by ``torch.utils.flop_counter`` (convolutions and matrix products,
2 FLOP per multiply-add) and multiplied out over the grid and the steps; the consistency
branch runs once per tile. The whole ``restore`` call is timed (best of --repeat), and so is
a 3x3 convolution of 64 -> 64 channels on a 512 x 512 map, the best case for this CPU's
convolution kernels. Both run under the same threads and precision the decoder uses.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cgdm_codec import generations
from cgdm_codec.device import autocast_for, use_granted_cores
from cgdm_codec.diffusion_config import SamplerConfig
from cgdm_codec.sampling.restore import restore
from cgdm_codec.sampling.tiling import make_grid


def conv_peak(repeat: int) -> float:
    """GFLOP/s of one 3x3, 64->64 convolution over a 512 x 512 map (float32 or as autocast)."""
    x = torch.randn(1, 64, 512, 512).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3).contiguous(memory_format=torch.channels_last)
    flops = 2 * 64 * 64 * 9 * 512 * 512
    best = float("inf")
    with torch.no_grad(), autocast_for(torch.device("cpu")):
        F.conv2d(x, w, padding=1)
        for _ in range(repeat + 2):
            t0 = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def unet_flops(unet, tile: tuple[int, int], cond_dim_from) -> tuple[int, int]:
    """FLOP of the diffusion branch (per step) and of the consistency branch, for one tile."""
    x = torch.zeros(1, 3, *tile)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            feats = unet.consistency(x)
        consistency = counter.get_total_flops()
        cond = cond_dim_from()
        with FlopCounterMode(display=False) as counter:
            unet.denoise(x, x, feats, cond)
        return counter.get_total_flops(), consistency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="768x512")
    ap.add_argument("--decoder", choices=["original", "newest"], default="newest")
    ap.add_argument("--steps", type=int, default=None, help="[default: the decoder's]")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))
    threads = use_granted_cores()
    bundle = generations.load_bundle("hyperprior")
    identity, sampler_dict, _ = bundle.decoders[0 if args.decoder == "original" else -1]
    sampler = SamplerConfig(**sampler_dict)
    steps = args.steps or sampler.steps
    cgdm = bundle.cgdm
    unet = cgdm.unet.eval()
    grid = make_grid(h, w, sampler.tile, sampler.overlap, unet.multiple, sampler.tiling)
    syn = torch.zeros(1, cgdm.cfg.syntax.length)
    per_step, per_tile = unet_flops(unet, grid.tile, lambda: unet.condition(torch.tensor([500]), syn,
                                                                          torch.tensor([2])))
    total = len(grid) * (steps * per_step + per_tile)
    x_tilde = torch.rand(1, 3, h, w)
    symbols = torch.zeros(cgdm.cfg.syntax.length, dtype=torch.long)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        restore(cgdm, x_tilde.clone(), symbols, 2, 0, steps, sampler=sampler)
        best = min(best, time.perf_counter() - t0)
    peak = conv_peak(args.repeat)
    result = {"size": [w, h], "decoder": args.decoder, "sampler": sampler_dict, "steps": steps,
              "tiles": len(grid), "tile": list(grid.tile), "threads": threads,
              "tile_pixels_per_image_pixel": round(len(grid) * grid.tile[0] * grid.tile[1] / (w * h), 3),
              "gflop": round(total / 1e9, 1), "seconds": round(best, 3),
              "achieved_gflops": round(total / best / 1e9, 1), "conv_peak_gflops": round(peak, 1)}
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
