"""Running one command over many files: in this process, or in N worker processes.

Standard library only. With one worker the files run one after another in this process,
so the weights load once for all of them (the pipeline caches them per process). With
N workers each process loads them once, and torch in each gets cores / N threads, so the
workers do not fight over the cores. A failure is a value (the file's one-line error),
never an exception that stops the other files, like gzip over several files.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Peak resident memory one worker may need: a 768x512 ``--effort default`` encode with the
#: learned base peaks at 1.36 GiB (docs/benchmarks.md); the default worker count keeps
#: this much free memory per worker.
WORKER_MEMORY_BYTES = 3 << 29  # 1.5 GiB


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What became of one task: ``message`` (what was written) or ``error`` with its exit code,
    and the notes its worker could not print itself."""

    task: T
    message: str = ""
    error: str | None = None
    code: int = 0
    notes: tuple[str, ...] = ()  # what the output lost, shown beside the file's line

    @property
    def ok(self) -> bool:
        return self.error is None


def available_cores() -> int:
    """The cores this process may run on (a container or taskset may grant fewer than exist)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def default_jobs(n_tasks: int) -> int:
    """As many workers as cores, no more than tasks, and no more than the free memory holds."""
    jobs = min(n_tasks, available_cores())
    memory = available_memory()
    if memory is not None:
        jobs = min(jobs, max(1, memory // WORKER_MEMORY_BYTES))
    return max(1, jobs)


def threads_per_job(jobs: int) -> int:
    return max(1, available_cores() // max(1, jobs))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start_worker(threads: int) -> None:
    """Before torch loads in the worker: its share of the cores, and SIGTERM (from the parent,
    on Ctrl-C) unwinding the task like Ctrl-C, so its temporary output file is removed."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    signal.signal(signal.SIGTERM, _interrupt)


def _in_worker(work: Callable[[T], Outcome[T]], task: T) -> Outcome[T]:
    """Run one task in a worker process. Interrupted (Ctrl-C reaches the whole process group;
    the parent sends SIGTERM), it ends the worker once the task's ``finally`` blocks have run:
    the executor would otherwise treat the interrupt as one failed task and start the next."""
    try:
        return work(task)
    except KeyboardInterrupt:
        os._exit(130)


def _stop_workers(pool: Any) -> None:
    """Start no new task, interrupt the running ones and wait until their workers have
    cleaned up (their temporary files removed)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=10)


def run(tasks: Sequence[T], work: Callable[[T], Outcome[T]], jobs: int) -> Iterator[Outcome[T]]:
    """Each task's outcome, in the order they finish. ``work`` must be a module-level function
    (it is pickled for the workers) that turns every expected failure into an ``Outcome``.

    Interrupted (Ctrl-C, or SIGTERM made KeyboardInterrupt by the caller), no new task starts,
    the running ones are stopped and their temporary files removed before this returns."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield work(task)
        return
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                               initializer=_start_worker, initargs=(threads_per_job(jobs),))
    finished = False
    try:
        owner: dict[Future[Any], T] = {pool.submit(_in_worker, work, t): t for t in tasks}
        pending = set(owner)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                try:
                    yield f.result()
                except Exception as e:  # a worker died (killed, out of memory): that file failed
                    yield Outcome(owner[f], error=f"worker failed ({type(e).__name__}: {e})", code=1)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted, or the caller stopped early
            _stop_workers(pool)
