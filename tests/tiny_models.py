"""Tiny torch models and inputs that tests of the sampler, the encoder's search and the
determinism checks share (tests/ is on the path: conftest.py lives there)."""

from __future__ import annotations

import torch

from cgdm_codec.diffusion_config import CgdmConfig, SamplerConfig
from cgdm_codec.models.cgdm import Cgdm

SAMPLER = SamplerConfig(tile=32, overlap=8, noise_period=16)


def trained_looking(seed: int = 0) -> Cgdm:
    """A tiny model whose zero-initialised layers are perturbed, so its output is not x~."""
    torch.manual_seed(seed)
    tiny = CgdmConfig.preset("tiny")
    model = Cgdm(CgdmConfig(unet=tiny.unet, syntax=tiny.syntax, sampler=SAMPLER))
    with torch.no_grad():
        model.unet.head[2].weight.normal_(std=0.05)
        for sff in model.unet.decoder.fuse:
            sff.w_e.to_params.weight.normal_(std=0.05)
    model.prior.update_tables()
    return model.eval()


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def randomised(net: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Every parameter drawn at random, the zero-initialised ones included (heads, the noise
    input, gains), so every path of the network shows in its output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return net
