"""Join `cgdm eval` folders that ran side by side on parts of one image set.

On a 2-core machine a long eval runs fastest as two 1-thread processes, each on a folder of
links to half the images and each with its own ``--out``. This appends to MAIN every row of
the EXTRA folders whose (image, codec, setting) MAIN lacks, then rewrites MAIN's reports
(summary, markdown, CSV, plot) over all rows as one run on IMAGES:

    python benchmarks/join_eval.py results/sunhays80/eval-NAME /tmp/eval-b \\
        --images ../shared/datasets/val/sunhays80 --downscale 0.5 --effort default \\
        --command "CGDM_BASE=av1 cgdm eval ... (two processes, joined)"

Give the options the parts ran with: they become MAIN's run.json, and nothing checks them
against the rows. The environment (CGDM_BASE, CGDM_DIFFUSION_WEIGHTS) must match too, since
run.json records the base and the weights id the process would encode with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = "results.jsonl"
RUN = "run.json"


def key(row: dict) -> tuple[str, str, int]:
    return (str(row["image"]), str(row["codec"]), int(row["setting"]))


def read_rows(folder: Path) -> list[dict]:
    path = folder / RESULTS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def missing_rows(main: list[dict], extras: list[list[dict]]) -> list[dict]:
    """Rows of the extras in order, first one wins, leaving out what MAIN already has."""
    seen = {key(r) for r in main}
    out = []
    for rows in extras:
        for r in rows:
            if key(r) not in seen:
                seen.add(key(r))
                out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("main", type=Path, help="the eval folder that receives the rows")
    ap.add_argument("extra", type=Path, nargs="+", help="eval folders of the other parts")
    ap.add_argument("--images", type=Path, required=True, help="the whole image folder")
    ap.add_argument("--downscale", type=float, default=1.0)
    ap.add_argument("--effort", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--command", default="", help="what to record as the run's command")
    args = ap.parse_args(argv)
    for folder in [args.main, *args.extra]:
        if not (folder / RESULTS).is_file():
            print(f"error: {folder / RESULTS} not found", file=sys.stderr)
            return 1
    added = missing_rows(read_rows(args.main), [read_rows(f) for f in args.extra])
    with (args.main / RESULTS).open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in added)
    print(f"{len(added)} rows added to {args.main / RESULTS}")

    from cgdm_lab.evaluation.runner import EvalConfig, Runner

    (args.main / RUN).unlink(missing_ok=True)  # the parts recorded their own image folders
    cfg = EvalConfig(images=args.images, outdir=args.main, downscale=args.downscale,
                     effort=args.effort, threads=args.threads, quiet=True, command=args.command)
    result = Runner(cfg).write_reports()
    print(f"reports rewritten: {result.get('images_complete')} images complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
