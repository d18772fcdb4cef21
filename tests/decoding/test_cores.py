"""``cores.in_order``: the stages' thread map keeps the order and bounds the work ahead."""

import threading
import time

from cgdm_codec.cores import in_order


def test_in_order_yields_in_order_whatever_finishes_first():
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i * i

    assert list(in_order(slow_first, range(10), workers=3)) == [i * i for i in range(10)]
    assert list(in_order(slow_first, range(10), workers=1)) == [i * i for i in range(10)]


def test_in_order_computes_at_most_one_item_a_worker_before_they_are_taken():
    started: list[int] = []
    lock = threading.Lock()

    def note(i: int) -> int:
        with lock:
            started.append(i)
        return i

    it = in_order(note, range(20), workers=2)
    assert next(it) == 0
    time.sleep(0.05)  # what the pool could start meanwhile
    assert len(started) <= 3
    assert list(it) == list(range(1, 20))


def test_freed_memory_is_handed_back_where_the_c_library_can_and_quietly_elsewhere(monkeypatch):
    import ctypes

    from cgdm_codec import cores

    calls = []
    cores._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: type("Libc", (), {"malloc_trim": staticmethod(calls.append)})())
    cores.return_freed_memory()
    assert calls == [0]
    cores._malloc_trim.cache_clear()

    def no_such_library(name):
        raise OSError("not here")

    monkeypatch.setattr(ctypes, "CDLL", no_such_library)
    cores.return_freed_memory()  # nothing to call, nothing raised
    cores._malloc_trim.cache_clear()
