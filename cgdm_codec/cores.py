"""How many cores this process may use: one answer for ONNX Runtime and the AV1 encoder."""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def granted_cores() -> int:
    """Cores this process may run on (a container or ``taskset`` may grant fewer), unless
    OMP_NUM_THREADS says otherwise (the batch runner and the Dask workers set it to share
    the machine between processes)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def return_freed_memory() -> None:
    """Hand the heap memory freed so far back to the system (glibc's ``malloc_trim``;
    nothing on other C libraries). glibc gives each thread that allocates an arena of its
    own and keeps what was freed in it: the mapped texture stage's tile threads, whose
    analyses the drawing frees strip by strip, made a 24 MP realism decode with a texture map
    peak at 1.01-1.06 GB; trimmed after each strip, 0.90-0.94 GB (docs/realism.md)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def in_order(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, yielded in order, at most ``workers`` items
    computed ahead of the consumer: for numpy work (which releases the interpreter lock in
    its loops) over tiles of an image, both cores busy in the memory of a few tiles."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque(pool.submit(fn, item) for item in items[:workers])
        for item in items[workers:]:
            done = pending.popleft().result()
            pending.append(pool.submit(fn, item))
            yield done
        while pending:
            yield pending.popleft().result()
