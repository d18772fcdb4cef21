"""Helpers shared by the training entry points: device, precision, checkpoints, logging."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

import torch

from cgdm_codec.device import autocast_for, cpu_has_fast_bf16, pick_device  # noqa: F401 (re-exported)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically so an interrupted save never destroys the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


class CsvLog:
    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, **row: Any) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


class Timer:
    def __init__(self, offset: float = 0.0) -> None:
        self.start, self.offset = time.monotonic(), offset

    def elapsed(self) -> float:
        return self.offset + time.monotonic() - self.start
