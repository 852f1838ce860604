"""Progress of long work: a bar on a terminal (click's), plain lines otherwise.

``Progress(label)`` is called as ``progress(phase, done, total, note="")``.
On a terminal each phase gets its own redrawn bar; in a log or a pipe it
prints ``label: phase done/total (pct%) note`` at most every ``every``
seconds, and the last state of each phase once, so a CI log stays short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click


class Progress:
    def __init__(self, label: str, stream: TextIO | None = None, every: float = 2.0,
                 tty: bool | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        self._phase: str | None = None
        self._bar = None
        self._shown = 0
        self._last_line: float | None = None  # None: no line yet, so the first goes out
        self._pending: str | None = None

    def __call__(self, phase: str, done: int, total: int, note: str = "") -> None:
        if phase != self._phase:
            self._finish()
            self._phase, self._shown = phase, 0
        if self.tty:
            if self._bar is None:
                self._bar = click.progressbar(length=max(total, 1), label=f"{self.label}: {phase}",
                                              file=self.stream, show_pos=True, width=30)
                self._bar.__enter__()
            self._bar.length = max(total, done, 1)
            self._bar.label = f"{self.label}: {phase}" + (f" ({note})" if note else "")
            self._bar.update(max(0, done - self._shown))
            self._shown = max(self._shown, done)
            return
        percent = f" ({100 * done // total}%)" if total else ""
        line = f"{self.label}: {phase} {done}/{total}{percent}" + (f" {note}" if note else "")
        now = time.monotonic()
        if self._last_line is None or now - self._last_line >= self.every:
            self._write(line)
            self._last_line, self._pending = now, None
        else:
            self._pending = line

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        elif self._pending is not None:
            self._write(self._pending)
            self._pending = None

    def close(self) -> None:
        self._finish()
        self._phase = None
