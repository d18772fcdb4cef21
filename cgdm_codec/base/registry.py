"""The base codecs a ``.cgdm`` file can name (docs/format.md, 3.2): one line per backend.

Standard library only: the container reads the stream counts from here, and ``cgdm info``
must not import torch. A backend's module is imported only when a file needs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backend:
    codec_id: int
    name: str
    streams: tuple[str, ...]  # the base sections, in file order
    implementation: str  # "module:Class"
    # the CGDM weights trained on this base's decodes, oldest first: every generation stays
    # installed so that its files keep decoding; the encoder writes for the newest installed
    diffusion_weights: tuple[str, ...]
    network: bool  # whether coding with it needs torch (a base-only AV1 decode does not)
    # networks with a realism input that decode the files of a generation at a realism above 0
    # (their manifest's ``realism_for`` names the generations): a decode-time dial, no re-encode
    realism_weights: tuple[str, ...] = ()


BACKENDS: tuple[Backend, ...] = (
    Backend(1, "hyperprior", ("z", "y"), "cgdm_codec.base.hyperprior:HyperpriorBase", ("cgdm-small",), True),
    Backend(2, "av1", ("av1",), "cgdm_codec.base.av1:Av1Base", ("cgdm-av1", "cgdm-av1-2", "cgdm-av1-3"), False,
            ("cgdm-av1-3r",)),
)
BY_ID = {b.codec_id: b for b in BACKENDS}
BY_NAME = {b.name: b for b in BACKENDS}
#: Chosen by BD-rate on sunhays80 (docs/results.md).
DEFAULT_BACKEND = "av1"


def backend(key: int | str) -> Backend:
    table: dict[Any, Backend] = BY_ID if isinstance(key, int) else BY_NAME
    if key not in table:
        known = ", ".join(str(k) for k in table)
        raise ValueError(f"unknown base codec {key!r} (known: {known})")
    return table[key]


def create(key: int | str) -> Any:
    """A new backend object (the pipeline caches it per weights path)."""
    module, cls = backend(key).implementation.split(":")
    return getattr(importlib.import_module(module), cls).create()
