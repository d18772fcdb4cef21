"""ONNX Runtime's optimised graphs, kept between processes.

Building a session optimises its graph every time: for the U-Net's denoise graph at the
"all" level that is ~55 of the ~65 ms a 768×512 decode spends building sessions. The
optimised graph, saved once and loaded with optimisation off, builds in ~10 ms and computes
the same bits (``tests/decoding/test_graph_cache.py``). What ONNX Runtime saves depends on
the CPU (its convolution layouts follow the vector width) and on its version, so both are in
an entry's key, with the graph's bytes and the size and time of the weights file the graph
reads its tensors from.

An entry is three files: the graph, its tensors (``.bin``) and a record (``.sha256``) of
both files' hashes, written last and renamed into place, so a reader sees a whole entry or
none; a damaged one (its hashes differ) is ignored and written again. The folder is
``CGDM_CACHE_DIR``, else ``$XDG_CACHE_HOME/cgdm/ort`` (``~/.cache/cgdm/ort``); ``CGDM_CACHE_DIR``
set empty turns the cache off. Any failure to read or write it falls back to optimising
the graph as without a cache.

Keys change with every new runtime version, CPU and reinstall of the weights, so without
pruning the folder would only grow (~24 MB for the shipped graphs each time). Writing an
entry therefore prunes: files no record names (a writer that was killed) go once they are
an hour old, and while the folder holds more than ``MAX_BYTES`` the least recently used
entries go, a whole entry at a time. A read marks its entry used (the record's time, at
most once per ``TOUCH_SECONDS``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
import time
from pathlib import Path

MIN_EXTERNAL_BYTES = 1024  # smaller tensors stay in the graph (ONNX Runtime's shape inference reads some)
MAX_BYTES = 256 * 2**20  # ten sets of the shipped graphs
TOUCH_SECONDS = 3600  # how often a read marks its entry used (a write per decode would be wasteful)
ORPHAN_SECONDS = 3600  # an unrecorded file younger than this may be a writer's, still at work
OWN_NAME = re.compile(r"\.[0-9a-f]{24}(\.sha256|\.\d+-\d+\.(onnx|bin|part))$")  # what entry() and destination() name


def cache_dir() -> Path | None:
    env = os.environ.get("CGDM_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cgdm" / "ort"


@functools.lru_cache(maxsize=1)
def _cpu() -> str:
    """The CPU's model and feature flags (the kernels ONNX Runtime picks follow them)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            lines = sorted({ln for ln in f if ln.startswith(("flags", "model name", "Features", "CPU part"))})
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    except OSError:
        return f"{platform.machine()}:{platform.processor()}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entry(graph: Path, runtime: str) -> Path | None:
    """The record path of ``graph``'s entry (``runtime``: what else decides the optimised
    form, such as the level and the version), or None without a usable cache folder."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        data = graph.read_bytes()
        h = hashlib.sha256(data)
        for tensors in sorted(graph.parent.glob("*.safetensors")):
            if tensors.name.encode() in data:  # the graph's external data
                st = tensors.stat()
                h.update(f"{tensors.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(f"{runtime}:{_cpu()}".encode())
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / f"{graph.stem}.{h.hexdigest()[:24]}.sha256"


def lookup(record: Path) -> Path | None:
    """The optimised graph of an entry, if the entry is whole and its files hash as recorded."""
    try:
        fields = record.read_text().split()
        pairs = dict(zip(fields[1::2], fields[0::2]))  # file name -> sha256
        files = [record.with_name(name) for name in pairs]
        if len(files) != 2 or any(_sha256(f) != pairs[f.name] for f in files):
            return None
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):  # a read-only cache is still a cache
        now = time.time()
        if now - record.stat().st_mtime > TOUCH_SECONDS:
            os.utime(record, (now, now))
    return next(f for f in files if f.suffix == ".onnx")


def destination(record: Path) -> tuple[Path, str]:
    """Where a new entry's graph goes and the name of its tensors' file (this thread's own)."""
    token = f"{os.getpid()}-{threading.get_ident()}"
    stem = record.name[:-len(".sha256")]
    return record.with_name(f"{stem}.{token}.onnx"), f"{stem}.{token}.bin"


def commit(record: Path, graph: Path, tensors: str) -> None:
    """Record a written entry (renamed into place whole); the previous entry's files go."""
    with contextlib.suppress(OSError):
        old = record.read_text().split()[1::2] if record.exists() else []
        files = [graph, graph.with_name(tensors)]
        partial = record.with_name(f"{graph.stem}.part")
        partial.write_text("".join(f"{_sha256(f)} {f.name}\n" for f in files))
        os.replace(partial, record)
        for name in old:
            if name not in (graph.name, tensors):
                record.with_name(name).unlink(missing_ok=True)
        prune(record.parent, keep=record)


def _named(record: Path) -> list[Path]:
    """A record and the files it names."""
    try:
        return [record, *(record.with_name(n) for n in record.read_text().split()[1::2])]
    except OSError:
        return [record]


def prune(folder: Path, keep: Path) -> None:
    """Bound the folder: unrecorded files an hour old go, then the least recently used
    entries (never ``keep``) until it holds at most ``MAX_BYTES``."""
    now = time.time()
    ours = [f for f in folder.iterdir() if OWN_NAME.search(f.name)]  # the folder may be shared
    records = sorted((f for f in ours if f.suffix == ".sha256"), key=lambda r: _mtime(r, now))
    named = {p for r in records for p in _named(r)}
    for f in ours:
        if f not in named and now - _mtime(f, now) > ORPHAN_SECONDS:
            with contextlib.suppress(OSError):
                f.unlink()
    size = {r: sum(_size(p) for p in _named(r)) for r in records}
    total = sum(size.values())
    for r in records:  # oldest use first
        if total <= MAX_BYTES:
            break
        if r == keep:
            continue
        for p in _named(r)[::-1]:  # the record last: a half-removed entry is still refused
            with contextlib.suppress(OSError):
                p.unlink()
        total -= size[r]


def _mtime(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return default


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
