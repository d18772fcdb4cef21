"""The base codecs a ``.cgdm`` file can name (docs/format.md, 3.2): one line per backend.

Each line is the ``BaseRecord`` its backend's class carries (``interface.BaseRecord``):
adding a base codec is one module and one line here (``docs/base-codec.md``). The backend
modules import without numpy or torch, so the container reads the stream names from here
and ``cgdm info`` stays light; a backend's coder loads only when a file needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import av1, hyperprior, webp_lossless
from .interface import BaseRecord

if TYPE_CHECKING:
    from .interface import BaseCodec

BACKENDS: tuple[BaseRecord, ...] = (
    hyperprior.HyperpriorBase.record,
    av1.Av1Base.record,
    webp_lossless.WebpLosslessBase.record,
)
#: The lookups everything uses (a test may add a backend to both).
BY_ID: dict[int, BaseRecord] = {b.codec_id: b for b in BACKENDS}
BY_NAME: dict[str, BaseRecord] = {b.name: b for b in BACKENDS}
#: Chosen by BD-rate on sunhays80 (docs/results.md).
DEFAULT_BACKEND = "av1"


def backend(key: int | str) -> BaseRecord:
    """The record of a base codec, by container id or by name."""
    table: dict[Any, BaseRecord] = BY_ID if isinstance(key, int) else BY_NAME
    if key not in table:
        known = ", ".join(str(k) for k in table)
        raise ValueError(f"unknown base codec {key!r} (known: {known})")
    return table[key]


def names() -> tuple[str, ...]:
    """What ``--base`` accepts: the default first, then the others by id. A lossless backend
    is not among them: ``--lossless`` chooses it, so that one spelling says "exact"."""
    others = sorted((n for n, r in BY_NAME.items() if n != DEFAULT_BACKEND and not r.lossless),
                    key=lambda n: BY_NAME[n].codec_id)
    return (DEFAULT_BACKEND, *others)


def lossless_backend() -> str:
    """The backend ``--lossless`` encodes with (the first lossless one registered)."""
    return next(r.name for r in BACKENDS if r.lossless)


def is_lossless(codec_id: int) -> bool:
    """Whether files of this codec id are exact (and so never have a diffusion stage)."""
    record = BY_ID.get(codec_id)
    return record is not None and record.lossless


def stream_names(codec_id: int) -> tuple[str, ...] | None:
    """The base sections of a codec id, in file order; None for an id this cgdm does not know."""
    record = BY_ID.get(codec_id)
    return None if record is None else record.streams


def create(key: int | str) -> "BaseCodec":
    """A new backend object (the pipeline caches it per weights path)."""
    module, cls = backend(key).implementation.split(":")
    return getattr(importlib.import_module(module), cls).create()
