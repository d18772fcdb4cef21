"""Incremental, resumable results: one JSON object per line in OUTDIR/results.jsonl.

Each row is appended, flushed and fsynced as soon as it is measured, so a run that is
interrupted loses at most the row in flight; a rerun with the same OUTDIR skips every
(image, codec, setting) already there. OUTDIR/run.json records the settings that change
the numbers (downscale, effort, ...): resuming with different ones is refused, because the
rows would no longer be comparable.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Iterable

from . import EvalError

RESULTS = "results.jsonl"
RUN = "run.json"

Key = tuple[str, str, int]


def row_key(row: dict) -> Key:
    return (str(row["image"]), str(row["codec"]), int(row["setting"]))


def json_safe(x: object) -> object:
    """inf PSNR (identical images) and NaN are written as null: JSON has neither."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (a reader never sees half a report)."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


class ResultStore:
    """The rows of one evaluation folder."""

    def __init__(self, outdir: Path, identity: dict, resume: bool = True) -> None:
        self.outdir = outdir
        self.path = outdir / RESULTS
        outdir.mkdir(parents=True, exist_ok=True)
        run_file = outdir / RUN
        if resume and run_file.is_file() and self.path.is_file():
            old = json.loads(run_file.read_text())
            diff = [k for k in identity if old.get(k) != identity[k]]
            if diff:
                k = diff[0]
                raise EvalError(f"{outdir} holds a run with {k}={old.get(k)!r}, not {identity[k]!r}; "
                                 "use another --out or --no-resume to start it again")
        if not resume:
            self.path.unlink(missing_ok=True)
        write_text_atomic(run_file, json.dumps(identity, indent=1) + "\n")
        self.rows: list[dict] = self._load() if resume else []
        self.done: set[Key] = {row_key(r) for r in self.rows}

    def _load(self) -> list[dict]:
        """Rows already written; a torn last line (a crash mid-write) is dropped."""
        if not self.path.is_file():
            return []
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]
            self.path.write_bytes(raw)
        rows = []
        for line in raw.decode().splitlines():
            if line.strip():
                rows.append(json.loads(line))
        return rows

    def add(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(json_safe(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        self.done.add(row_key(row))


def write_csv(path: Path, rows: Iterable[dict]) -> None:
    """All rows as CSV, columns in first-seen order (empty where a row lacks a value)."""
    rows = list(rows)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    os.replace(tmp, path)
