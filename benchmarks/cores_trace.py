"""How busy a command keeps the cores, over time: run it, and every half second read its
CPU time and its resident memory from /proc (Linux).

    python benchmarks/cores_trace.py -- cgdm decode big.cgdm -o out.png -f -Q

Prints the wall time, then one line per sample: seconds since the start, cores in use over
the last interval (CPU seconds per wall second; 2.0 = both of two cores) and RSS in MB, and
last the mean cores between the first and the last second (start-up and the end left out).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

INTERVAL = 0.5


def cpu_seconds(pid: int) -> float | None:
    """User + system time of the whole process, its threads (ended ones too) included
    (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def main() -> int:
    cmd = sys.argv[1:]
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        print(__doc__)
        return 2
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    samples, last_cpu, last_t = [], 0.0, start
    while proc.poll() is None:
        time.sleep(INTERVAL)
        cpu, now, rss = cpu_seconds(proc.pid), time.perf_counter(), rss_mb(proc.pid)
        if cpu is None or rss is None:
            break
        samples.append((now - start, (cpu - last_cpu) / (now - last_t), rss))
        last_cpu, last_t = cpu, now
    proc.wait()
    wall = time.perf_counter() - start
    print(f"wall {wall:.2f} s, exit {proc.returncode}")
    for t, cores, rss in samples:
        print(f"{t:6.1f} s  cores {cores:4.2f}  rss {rss} MB")
    middle = [c for t, c, _ in samples if 1.0 <= t <= wall - 1.0]
    if middle:
        print(f"mean cores from 1 s to the last second: {sum(middle) / len(middle):.2f}; "
              f"peak rss {max(r for _, _, r in samples)} MB")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
