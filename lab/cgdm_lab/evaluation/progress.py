"""A progress bar with ETA on stderr for a run made of unequal tasks.

cgdm levels and anchor sweeps take very different times, so the ETA uses the mean
duration of each kind of task measured so far (tasks skipped on resume count as done but
not in the means).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import TextIO


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    def __init__(self, totals: dict[str, int], quiet: bool = False, stream: TextIO | None = None,
                 width: int = 24) -> None:
        self.totals, self.quiet, self.width = dict(totals), quiet, width
        self.stream = stream or sys.stderr
        self.done: dict[str, int] = defaultdict(int)
        self.timed: dict[str, list[float]] = defaultdict(list)
        self.t0 = time.monotonic()
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    def eta(self) -> float | None:
        """Seconds left, from each kind's mean task time (any kind's if one has none yet)."""
        known = {k: sum(v) / len(v) for k, v in self.timed.items() if v}
        if not known:
            return None
        fallback = max(known.values())
        return sum((self.totals[k] - self.done[k]) * known.get(k, fallback) for k in self.totals)

    def step(self, kind: str, seconds: float | None, label: str = "") -> None:
        """One task of ``kind`` finished (``seconds`` None: skipped, already in the results)."""
        self.done[kind] += 1
        if seconds is not None:
            self.timed[kind].append(seconds)
        if not self.quiet:
            self._draw(label)

    def line(self, label: str = "") -> str:
        done, total = sum(self.done.values()), sum(self.totals.values())
        filled = self.width * done // max(total, 1)
        eta = self.eta()
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
                f"{clock(time.monotonic() - self.t0)} elapsed, ETA {clock(eta) if eta is not None else '?'}"
                + (f"  {label}" if label else ""))

    def _draw(self, label: str) -> None:
        text = self.line(label)
        if self.tty:
            self.stream.write("\r" + text[:160].ljust(160) + "\r")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A note that must not be overwritten by the bar."""
        if not self.quiet:
            self.stream.write(("\r" + " " * 160 + "\r" if self.tty else "") + text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
