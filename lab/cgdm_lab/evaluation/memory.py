"""Peak memory of one codec call inside a long-running process.

``tracemalloc`` only sees Python allocations (not torch's), and ``ru_maxrss`` only ever
grows, so neither can say what one call needed. On Linux, writing "5" to
/proc/self/clear_refs resets the process's RSS high-water mark (VmHWM) to the current RSS;
VmHWM read after the call is then the largest resident set during that call. It includes
everything already resident (the Python interpreter, torch and the loaded weights, ~1 GB),
so it is close to what a ``cgdm`` process needs for that image, not the call's increment.
On CUDA the peak of torch's allocator is recorded as well.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak() -> bool:
    """Reset the RSS high-water mark; False where the OS does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.rss_mib`` (None if unmeasurable) and
    ``m.cuda_mib`` (None unless ``cuda`` is true)."""

    def __init__(self, cuda: bool = False) -> None:
        self.cuda = cuda
        self.rss_mib: float | None = None
        self.cuda_mib: float | None = None
        self._ok = False

    def __enter__(self) -> "PeakMemory":
        self._ok = reset_peak()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _vm_kib("VmHWM") if self._ok else None
        self.rss_mib = None if hwm is None else hwm / 1024.0
        if self.cuda:
            import torch

            self.cuda_mib = torch.cuda.max_memory_allocated() / 2**20
