"""Cut a trained U-Net down to fewer channels per level, as the start of a distillation.

``python -m cgdm_lab.train.slim cgdm_codec/weights/cgdm-av1-6.safetensors OUT.safetensors --widths 24 48 48``

Every level keeps the same share of each group-norm group (so a group of the narrow network
is the kept part of the teacher's group, and the norms keep their meaning), chosen by how
much the level's filters weigh: within each group the channels whose output filters have the
largest norms survive, one choice per level shared by every tensor of that width. The
condition path, the syntax generator and the prior are copied whole. The result decodes
worse than the teacher until ``train.cgdm --teacher`` has trained it back toward it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from cgdm_codec.diffusion_config import CgdmConfig, UNetConfig
from cgdm_codec.models.cgdm import Cgdm
from .cgdm import export, read_init

#: A tensor dimension's space: ("S", i) level i's channels, ("C", i) two of them concatenated,
#: ("P", i) an SFF kernel generator's outputs (9 offsets per channel, then one gain each).
Space = tuple[str, int]


def index_plan(cfg: UNetConfig) -> dict[str, list[tuple[int, Space]]]:
    """Which dimensions of which U-Net tensors lie in which channel space."""
    levels, ch = len(cfg.channels), cfg.channels
    plan: dict[str, list[tuple[int, Space]]] = {}

    def conv(key: str, out: Space, cin: Space | None) -> None:
        plan[f"{key}.weight"] = [(0, out)] + ([(1, cin)] if cin is not None else [])
        plan[f"{key}.bias"] = [(0, out)]

    def block(key: str, level: int, cin: Space, film: bool, skip: bool) -> None:
        plan[f"{key}.norm1.weight"] = plan[f"{key}.norm1.bias"] = [(0, cin)]
        conv(f"{key}.conv1", ("S", level), cin)
        plan[f"{key}.norm2.weight"] = plan[f"{key}.norm2.bias"] = [(0, ("S", level))]
        conv(f"{key}.conv2", ("S", level), ("S", level))
        if film:
            conv(f"{key}.film", ("C", level), None)
        if skip:
            conv(f"{key}.skip", ("S", level), cin)

    for name, film in (("consistency_encoder", False), ("diffusion_encoder", True)):
        p = f"unet.{name}"
        conv(f"{p}.stem.1", ("S", 0), None)
        for i in range(levels):
            cin = ("S", max(i - 1, 0))
            block(f"{p}.levels.{i}.0", i, cin, film, skip=ch[i] != ch[max(i - 1, 0)])
            if i < levels - 1:
                conv(f"{p}.downs.{i}", ("S", i), ("S", i))
    p = "unet.decoder"
    for i in range(levels):
        for branch in ("w_e", "w_d"):
            plan[f"{p}.fuse.{i}.{branch}.base"] = [(0, ("S", i))]
            conv(f"{p}.fuse.{i}.{branch}.to_params", ("P", i), None)
        conv(f"{p}.fuse.{i}.mix", ("S", i), ("C", i))
        deepest = i == levels - 1
        block(f"{p}.levels.{i}.0", i, ("S", i) if deepest else ("C", i), film=True, skip=not deepest)
        if i > 0:
            conv(f"{p}.ups.{i - 1}", ("S", i - 1), ("S", i))
    plan["unet.head.0.weight"] = plan["unet.head.0.bias"] = [(0, ("S", 0))]
    plan["unet.head.2.weight"] = [(1, ("S", 0))]
    return plan


def resolve(space: Space, keep: list[torch.Tensor], widths: tuple[int, ...]) -> torch.Tensor:
    """The teacher's indices a space keeps, in order."""
    kind, i = space
    s, c = keep[i], widths[i]
    if kind == "S":
        return s
    if kind == "C":
        return torch.cat([s, s + c])
    return torch.cat([(s[:, None] * 9 + torch.arange(9)).flatten(), c * 9 + s])


def choose(tensors: dict[str, torch.Tensor], plan: dict[str, list[tuple[int, Space]]],
           old: tuple[int, ...], new: tuple[int, ...]) -> list[torch.Tensor]:
    """Per level, the kept channels: in each group-norm group, those whose output filters
    weigh most (each tensor's filter norms scaled to mean 1, summed over the tensors)."""
    keep = []
    for i, (c, n) in enumerate(zip(old, new)):
        groups = min(8, c)
        if c % groups or n % groups or n > c:
            raise SystemExit(f"level {i}: {n} channels cannot keep a share of each of {groups} groups of {c}")
        score = torch.zeros(c)
        for key, dims in plan.items():
            if key.endswith(".weight") and dims[0] == (0, ("S", i)) and tensors[key].dim() == 4:
                norms = tensors[key].flatten(1).norm(dim=1)
                score += norms / norms.mean().clamp_min(1e-12)
        size, share = c // groups, n // groups
        picks = [g * size + torch.topk(score[g * size:(g + 1) * size], share).indices.sort().values
                 for g in range(groups)]
        keep.append(torch.cat(picks))
    return keep


def slim(tensors: dict[str, torch.Tensor], cfg: CgdmConfig, widths: tuple[int, ...]
         ) -> tuple[CgdmConfig, dict[str, torch.Tensor]]:
    """The narrow network's config and tensors, cut from the teacher's."""
    if cfg.restoration is not None:
        raise SystemExit("slim cuts the U-Net; these weights are the one-pass restoration network")
    old = cfg.unet.channels
    if len(widths) != len(old):
        raise SystemExit(f"--widths names {len(widths)} levels, the network has {len(old)}")
    if any((a == b) != (c == d) for a, b, c, d in zip(old, old[1:], widths, widths[1:])):
        raise SystemExit(f"--widths {widths} must change width between the same levels as {old}")
    plan = index_plan(cfg.unet)
    keep = choose(tensors, plan, old, widths)
    out = {}
    for key, value in tensors.items():
        for dim, space in plan.get(key, []):
            value = value.index_select(dim, resolve(space, keep, old))
        out[key] = value.contiguous()
    return replace(cfg, unet=replace(cfg.unet, widths=tuple(widths))), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher", help="trained U-Net weights (.safetensors or a .pt checkpoint)")
    ap.add_argument("out", help="where to write the narrow network's weights (.safetensors)")
    ap.add_argument("--widths", type=int, nargs="+", required=True, help="channels per level")
    args = ap.parse_args(argv)
    cfg, tensors = read_init(args.teacher)
    cfg, tensors = slim(tensors, cfg, tuple(args.widths))
    model = Cgdm(cfg)
    model.load_state_dict(tensors)
    manifest = export(model, args.out, name=Path(args.out).stem, stage="slim", steps=0,
                      data=f"cut from {args.teacher}", base="av1")
    print(f"wrote {args.out} ({sum(v.numel() for k, v in tensors.items() if k.startswith('unet.')):,} "
          f"U-Net parameters, sha256 {manifest['sha256'][:12]})")


if __name__ == "__main__":
    main()
