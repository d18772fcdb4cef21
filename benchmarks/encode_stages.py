"""Where the time of one ``cgdm encode`` goes, stage by stage, in a fresh process per run.

    python benchmarks/encode_stages.py IMAGE [--level 3] [--effort default] [--repeat 3]

Each run is a new Python process that encodes IMAGE through ``cgdm_codec.encode`` and
stamps every progress message the encoder sends with ``time.perf_counter``; a stage is the
time from its message to the next one. ``start`` is the process up to the encoder's
first message (interpreter, modules, reading the image); the last stage also holds writing
the container, which has no message of its own. The median of every stage over the runs
is printed as a markdown row, with the file's size; ``--json`` writes the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from prepare import write_bytecode

CHILD = r'''
import sys, time, json
t0 = time.perf_counter()
import cgdm_codec
path, level, effort = sys.argv[1], int(sys.argv[2]), sys.argv[3]
marks = []
def progress(message, *args, **kwargs):
    marks.append((message, time.perf_counter() - t0))
data = cgdm_codec.encode(path, level, effort=effort, progress=progress)
marks.append(("end", time.perf_counter() - t0))
print(json.dumps({"marks": marks, "bytes": len(data)}))
'''

#: Progress messages that start a stage (a prefix), and the stage's short name.
STAGES = (
    ("loading weights", "weights"),
    ("base codec", "av1 encode"),
    ("syntax: decoding the base", "av1 decode"),
    ("syntax: the generator's pass", "syntax"),
    ("scoring", "scoring"),
    ("the base-only decode scores better", "scoring"),
)


def stage_of(message: str) -> str | None:
    return next((name for prefix, name in STAGES if message.startswith(prefix)), None)


def stages(marks: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per named stage; unnamed messages count toward the stage before them."""
    out = {"start": marks[0][1]}
    current = "start"
    for (message, start), (_, stop) in zip(marks, marks[1:]):
        name = stage_of(message)
        current = name or current
        out[current] = out.get(current, 0.0) + stop - start
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--effort", default="default")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    write_bytecode()
    runs = []
    for i in range(args.repeat):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.image), str(args.level), args.effort],
                             check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        run = json.loads(out.stdout.strip().splitlines()[-1])
        run["wall"] = wall
        run["stages"] = stages(run["marks"])
        runs.append(run)
        print(f"run {i + 1}: {wall:.2f} s, {run['bytes']} bytes", file=sys.stderr, flush=True)
    names = list(dict.fromkeys(k for r in runs for k in r["stages"]))
    med = {k: statistics.median(r["stages"].get(k, 0.0) for r in runs) for k in names}
    print("| " + " | ".join(names + ["whole process", "bytes"]) + " |")
    print("|" + "---:|" * (len(names) + 2))
    print("| " + " | ".join(f"{med[k]:.2f}" for k in names)
          + f" | {statistics.median(r['wall'] for r in runs):.2f} | {runs[-1]['bytes']} |")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
