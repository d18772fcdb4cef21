"""Export a diffusion-stage checkpoint's EMA weights as shipped weights.

``python -m cgdm_lab.train.export_cgdm checkpoints/cgdm-fine/last.pt cgdm_codec/weights/cgdm-small.safetensors
--base cgdm_codec/weights/base-hp1.safetensors``

``--base av1`` for a stage trained on AV1 decodes (that base has no weights). ``--sampler
current`` ships the current decoder settings (``diffusion_config.CURRENT_SAMPLER``: fitted
tiles, 5 steps) instead of the checkpoint's: right for a coarse-stage checkpoint, whose
training never ran the sampler, wrong for a fine stage trained through other settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dataclasses import replace

from cgdm_codec.diffusion_config import CURRENT_SAMPLER, CgdmConfig
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.weights import sha256_file
from .cgdm import export, pairs_base


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--base", required=True,
                    help="the base-codec weights this stage was trained on, or 'av1'")
    ap.add_argument("--sampler", choices=["checkpoint", "current"], default="checkpoint",
                    help="decoder settings to ship (see the module docstring)")
    ap.add_argument("--history", default=None, help="JSON of earlier stages to record (e.g. the coarse run)")
    ap.add_argument("--fast-for", nargs="+", default=None, metavar="GENERATION",
                    help="a network distilled from these generations (train.cgdm --teacher): "
                         "``cgdm decode --fast`` runs it on their files")
    ap.add_argument("--note", default=None, help="what the weights are, for the manifest")
    args = ap.parse_args(argv)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    cfg = CgdmConfig.from_dict(state["config"])
    if args.sampler == "current":
        cfg = replace(cfg, sampler=replace(CURRENT_SAMPLER, train_timesteps=cfg.sampler.train_timesteps,
                                           schedule=cfg.sampler.schedule, beta_start=cfg.sampler.beta_start,
                                           beta_end=cfg.sampler.beta_end))
    model = Cgdm(cfg)
    model.load_state_dict(state["ema"])
    history = json.loads(Path(args.history).read_text()) if args.history else []
    weightless = pairs_base(args.base) is not None  # a registered base without weights (av1)
    manifest = export(
        model, args.out, name=Path(args.out).stem, stage=state["stage"], steps=int(state["step"]),
        seconds=round(float(state["seconds"]), 1), data=state.get("data", ""),
        base=(args.base if weightless else Path(args.base).name),
        base_sha256=None if weightless else sha256_file(args.base), ema=0.999, history=history,
        training_entry_point="python -m cgdm_lab.train.cgdm",
        **({"fast_for": args.fast_for} if args.fast_for else {}),
        **({"note": args.note} if args.note else {}),
        data_note="BSDS500 (non-commercial research/teaching terms), Urban100 (every other "
                  "image), photographic Debian wallpapers: weights inherit BSDS500's terms",
    )
    print(f"wrote {args.out} sha256 {manifest['sha256']}")


if __name__ == "__main__":
    main()
