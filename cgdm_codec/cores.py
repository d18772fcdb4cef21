"""How many cores this process may use: one answer for ONNX Runtime and the AV1 encoder."""

from __future__ import annotations

import os


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
