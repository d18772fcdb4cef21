"""How many cores this process may use: one answer for ONNX Runtime and the AV1 encoder."""

from __future__ import annotations

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
