"""Where and in which precision the networks run."""

from __future__ import annotations

import contextlib
import os

import torch

#: Set by the user (or by ``cgdm_codec.batch`` for its workers): then torch's threads are left alone.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_threads_set = False


def use_granted_cores() -> int:
    """One torch thread per core this process may run on (``os.sched_getaffinity``: a
    container or ``taskset`` may grant fewer cores than the machine has), unless the
    environment sets the thread count. Once per process: a later ``torch.set_num_threads``
    by the caller (``cgdm eval --threads``, training) stays in force."""
    global _threads_set
    if not _threads_set and not any(os.environ.get(v) for v in THREAD_VARIABLES):
        _threads_set = True
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        if cores != torch.get_num_threads():
            torch.set_num_threads(max(1, cores))
    return torch.get_num_threads()


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but no CUDA device is available")
    use_granted_cores()
    if name == "cuda":
        # cuDNN may otherwise pick (or benchmark its way to) a different convolution
        # algorithm from run to run; the decoder promises the same pixels every time.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """AMX tiles: only there do bfloat16 convolutions clearly beat float32 on the CPU.

    Measured on an AVX-512-BF16 machine without AMX: a base-codec training step took 1.1 s in
    bfloat16 against 0.8 s in float32, so AVX-512 BF16 alone does not qualify.
    """
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def autocast_for(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bfloat16 autocast where it pays off (CUDA, or CPUs with AMX tiles)."""
    use_bf16 = precision == "bf16" or (
        precision == "auto" and (device.type == "cuda" or cpu_has_fast_bf16()))
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
