"""Two whole-process commands timed in turn (A B A B ...), with medians and pairwise ratios.

    python benchmarks/ab.py -n 9 "cgdm decode new.cgdm -o a.png -f -Q" "cgdm decode old.cgdm -o b.png -f -Q"

Each run is one child process measured as ``speed.py`` measures its steps: wall seconds
from a monotonic clock around it, user + system seconds and peak resident memory from the
operating system's accounting of the finished child (``wait4``, as ``/usr/bin/time -v``
reports them; the peak cannot read below this script's own size, ~19 MiB, which the child
has before it starts the command). Running A and B in turn and taking the ratio pair by
pair keeps the ratio meaningful while the machine's speed drifts; quote the medians. One
warm-up pair is run first and not counted (``--warmup``).

To time an older commit, put a worktree of it on ``PYTHONPATH`` and run ``python -P -m
cgdm_codec.cli ...``: without ``-P``, ``-m`` puts the current directory first on
``sys.path``, and from the repository's root that imports the checkout's own code.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics

from speed import run_measured


def run_once(argv: list[str]) -> tuple[float, float, float]:
    """(wall s, cpu s, peak MiB) of one run of ``argv`` (``speed.run_measured``)."""
    run = run_measured(argv, dict(os.environ))
    if run.returncode != 0:
        raise SystemExit(f"ab: {shlex.join(argv)} exited with {run.returncode}: {run.stderr_tail.strip()[-300:]}")
    return run.wall_s, run.cpu_s, run.peak_rss_mib


def spread(values: list[float]) -> str:
    return f"{min(values):8.3f} {statistics.median(values):8.3f} {max(values):8.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="command A, one string split as a shell splits words")
    ap.add_argument("b", help="command B (the baseline)")
    ap.add_argument("-n", type=int, default=5, help="counted pairs")
    ap.add_argument("--warmup", type=int, default=1, help="pairs run first and not counted")
    args = ap.parse_args()
    commands = {"A": shlex.split(args.a), "B": shlex.split(args.b)}
    for _ in range(args.warmup):
        for argv in commands.values():
            run_once(argv)
    rows: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
    for _ in range(args.n):
        for key, argv in commands.items():
            rows[key].append(run_once(argv))
    print(f"{args.n} pairs, A then B in turn; min / median / max")
    for key in commands:
        wall, cpu, peak = (list(col) for col in zip(*rows[key]))
        print(f"{key} wall s  {spread(wall)}\n{key} cpu s   {spread(cpu)}\n{key} peak MiB {spread(peak)}")
    ratio = [a[0] / b[0] for a, b in zip(rows["A"], rows["B"])]
    print(f"A/B wall  {spread(ratio)}")


if __name__ == "__main__":
    main()
