"""Export a base-codec training checkpoint as shipped weights.

``python -m cgdm_lab.train.export_base checkpoints/base/last.pt cgdm_codec/weights/base-hp1.safetensors``

Builds the range coder's CDF tables once, here, and stores them in the file: the tables are
then part of the weights, so encoder and decoder can never compute different ones.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from cgdm_codec.config import BaseCodecConfig
from cgdm_codec.models.base_codec import VariableRateHyperprior
from cgdm_codec.weights import save_weights


def export(ckpt: str | Path, out: str | Path, figures: dict | None = None) -> dict:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = BaseCodecConfig.from_dict(state["config"])
    model = VariableRateHyperprior(cfg)
    model.load_state_dict(state["model"], strict=False)
    model.eval().update_tables()
    manifest = {
        "name": Path(out).stem,
        "kind": "base-codec",
        "architecture": "VariableRateHyperprior (mean-scale hyperprior + per-quality gain units)",
        "config": cfg.to_dict(),
        "training": {
            "entry_point": "python -m cgdm_lab.train.base",
            "data": state.get("data", ""),
            "data_note": "BSDS500 (non-commercial research/teaching terms), Urban100 (every "
                         "other image), photographic Debian wallpapers: weights inherit "
                         "BSDS500's non-commercial terms",
            "steps": int(state["step"]),
            "seconds": round(float(state["seconds"]), 1),
            "batch": "8 crops of 128x128, one random quality level per crop",
            "precision": "train.base --precision auto: bfloat16 autocast on CUDA and AMX CPUs, "
                         "float32 otherwise; channels_last",
            "machine": platform.processor() or platform.machine(),
        },
        "validation": figures or {},
        "format": "safetensors; float32 parameters, int32 CDF tables",
    }
    tensors = {k: v for k, v in model.state_dict().items()}
    return save_weights(out, tensors, manifest)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--figures", default=None, help="JSON file of measured validation figures")
    args = ap.parse_args(argv)
    figures = json.loads(Path(args.figures).read_text()) if args.figures else None
    m = export(args.checkpoint, args.out, figures)
    print(f"wrote {args.out} sha256 {m['sha256']}")


if __name__ == "__main__":
    main()
