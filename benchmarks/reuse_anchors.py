"""Start a `cgdm eval` folder with the rows of an earlier run that new diffusion weights
cannot change: the anchors (JPEG, WebP, AVIF, JPEG XL) and, with ``--base-only``, the
base-only ablation. `cgdm eval --out NEW` then resumes and codes only the cgdm rows, so two
weights generations are compared on the same images against the same anchors at a
fraction of the time.

    python benchmarks/reuse_anchors.py results/sunhays80/eval-cgdm-av1-4 /tmp/eval-new --base-only
    CGDM_DIFFUSION_WEIGHTS=new.safetensors CGDM_BASE=av1 cgdm eval ../shared/datasets/val/sunhays80 \
        --downscale 0.5 --effort default --out /tmp/eval-new

Refuses a NEW folder that already holds rows. Nothing checks that the new eval codes the
same images with the same downscale and base as the reused rows: pass the earlier run's
options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = "results.jsonl"
CGDM = "cgdm"
BASE_ONLY = "cgdm:base-only"


def reusable(row: dict, base_only: bool) -> bool:
    """Rows whose values do not depend on the diffusion weights."""
    codec = row.get("codec", "")
    if codec == BASE_ONLY:
        return base_only
    return not codec.startswith(CGDM)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="an earlier eval folder")
    ap.add_argument("new", type=Path, help="the folder the new eval will write")
    ap.add_argument("--base-only", action="store_true",
                    help="also reuse the base-only ablation (right when the base codec and its "
                         "settings are unchanged)")
    args = ap.parse_args(argv)
    src = args.old / RESULTS
    if not src.is_file():
        print(f"error: {src} not found", file=sys.stderr)
        return 1
    dst = args.new / RESULTS
    if dst.exists():
        print(f"error: {dst} exists; give a new folder", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if reusable(r, args.base_only)]
    args.new.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(json.dumps(r) + "\n" for r in kept))
    print(f"{len(kept)} of {len(rows)} rows reused into {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
