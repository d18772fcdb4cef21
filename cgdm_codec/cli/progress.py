"""Progress on stderr: stage messages with the elapsed time, bars for counted work, and, on a
terminal, a ticking clock while a stage runs without a message.

Why the clock: some stages of the pipeline run for a minute on a 12 MP image without saying
anything (the encoder's scoring of the diffusion decode, for one; libaom's encode of a 24 MP
picture, one call of ~18 s), and a silent terminal looks like a hung program. The clock
redraws one line in place; logs (stderr not a terminal) get a line instead every
``HEARTBEAT`` seconds of such a silence. Counted work (the diffusion stage's tiles, the
fine-tuning iterations) is a bar with an ETA, redrawn in place on a terminal and a line every
``LOG_EVERY`` seconds in a log. ``-Q`` silences all of it but the notes of what an output
loses; ``-QQ`` those too.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"


def progress_line(what: str, done: int, total: int, stage_seconds: float, clock: float,
                  width: int) -> str:
    """``[ 12.0s] what [#####.....] 5/10 ETA 12s``: the remaining time assumes the pace so far."""
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    if done >= total:
        tail = f"done in {stage_seconds:.1f}s"
    else:
        tail = f"ETA {stage_seconds / max(done, 1) * (total - done):.0f}s"
    return f"[{clock:5.1f}s] {what} [{bar}] {done}/{total} {tail}"


class Reporter:
    """Stage messages with elapsed time on stderr, and progress bars with an ETA for
    counted work (diffusion steps, fine-tuning iterations); silenced by --quiet.

    Use it as a context manager (or call :meth:`close`) so that the terminal's clock line is
    cleared before anything else is printed, an error line included.
    """

    BAR = 24
    #: Seconds without a message before the terminal shows the clock line.
    TICK = 1.0
    #: Off a terminal: seconds between the lines of counted work, and of silence before a
    #: line that says the stage still runs (a log should show progress, not every tick).
    LOG_EVERY = 5.0
    HEARTBEAT = 10.0

    def __init__(self, quiet: int, stream: TextIO | None = None, tty: bool | None = None,
                 tick: float = TICK) -> None:
        self.quiet, self.t0 = bool(quiet), time.monotonic()
        #: Notes of what an output loses are shown on -Q too; only -QQ (quiet 2) hides them.
        self.notes_shown = quiet < 2
        self.notes: list[str] = []  # every note, for a batch to show beside its file's line
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = bool(tty)
        self.tick = tick
        self.last_event = self.t0
        self.stage: tuple[str, float, int] | None = None  # what, start time, last count
        self.last_line = 0.0
        self.current = ""  # the last stage message, which the clock line repeats
        self.transient = False  # a line without its newline is on the terminal (a bar, the clock)
        self.bar_open = False
        self.counting = False  # a bar is under way: its own lines say that work goes on
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._clock: threading.Thread | None = None
        self._closed = False

    # -------------------------------------------------------------- output

    def _write(self, text: str) -> None:
        """Write and flush; a broken stderr ends the messages, never the work. Nothing once
        silenced (``close``)."""
        if self._closed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.quiet, self.notes_shown = True, False

    def _clear(self) -> None:
        if self.transient:
            self._write(CLEAR_LINE if self.tty else "\n")
            self.transient = False
            self.bar_open = False

    def __call__(self, msg: str) -> None:
        """A stage begins (or a note): one line, with the time since the start."""
        with self._lock:
            self.last_event = time.monotonic()
            self.current = msg
            self.counting = False
            if self.quiet:
                return
            self._clear()
            self._write(f"[{self.last_event - self.t0:5.1f}s] {msg}\n")
            self._start_clock()

    def note(self, msg: str) -> None:
        """What the output loses or what an option cannot do (dropped frames, alpha, metadata;
        --realism on a file without the diffusion stage): shown even on -Q, as a silent loss
        is what a user least expects; -QQ hides it."""
        with self._lock:
            self.notes.append(msg)
            if self.quiet and self.notes_shown:
                self._clear()
                self._write(f"cgdm: note: {msg}\n")
        if not self.quiet:
            self(f"note: {msg}")

    def step(self, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of counted work: a bar, redrawn in place on a terminal,
        every 5 s and at the end otherwise."""
        with self._lock:
            now = time.monotonic()
            if self.stage is None or self.stage[0] != what or done <= self.stage[2]:
                self.stage = (what, self.last_event, 0)
            start = self.stage[1]
            self.stage = (what, start, done)
            self.last_event = now
            if self.quiet:
                return
            line = progress_line(what, done, total, now - start, now - self.t0, self.BAR)
            if self.tty:
                finished = done >= total
                self._write(CLEAR_LINE + line + ("\n" if finished else ""))
                self.transient = self.bar_open = not finished
                self._start_clock()
            elif done >= total or now - self.last_line >= self.LOG_EVERY:
                self._write(line + "\n")
                self.last_line = now
            self.counting = done < total

    # --------------------------------------------------------------- clock

    def _start_clock(self) -> None:
        if self._clock is None and not self._stop.is_set():
            clock = threading.Thread(target=self._run_clock, name="cgdm-progress", daemon=True)
            clock.start()  # before it is published: close() (another thread) may join it at once
            self._clock = clock

    def _run_clock(self) -> None:
        while not self._stop.wait(min(0.25, self.tick)):
            with self._lock:
                now = time.monotonic()
                silent = now - self.last_event
                if self.quiet or self.bar_open or self.counting or not self.current:
                    continue
                if self.tty and silent >= self.tick:
                    self._write(f"{CLEAR_LINE}[{now - self.t0:5.1f}s] {self.current} ... {silent:.0f}s")
                    self.transient = True
                elif not self.tty and silent >= self.HEARTBEAT and now - self.last_line >= self.HEARTBEAT:
                    self._write(f"[{now - self.t0:5.1f}s] {self.current} ... still running ({silent:.0f}s)\n")
                    self.last_line = now

    def close(self, silence: bool = False) -> None:
        """Stop the clock and clear its line (before an error or the final message);
        ``silence``: print nothing more (after Ctrl-C the work thread may still announce a
        stage before the process ends, and the error line must be the last thing printed)."""
        self._stop.set()
        clock = self._clock
        if clock is not None and clock is not threading.current_thread():
            clock.join()
        with self._lock:
            self._clear()
            self._closed = silence

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(silence=exc_type is not None and issubclass(exc_type, KeyboardInterrupt))
