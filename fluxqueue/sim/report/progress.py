"""A plain-terminal progress line: redrawn in place on a TTY, periodic full lines otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        width: int = 30,
        line_interval: float = 5.0,
        tty: bool | None = None,
    ) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.width = width
        self.line_interval = line_interval
        self.tty = self.stream.isatty() if tty is None else tty
        self._last_line = -1e18
        self._drawn = False

    def render(self, done: int, running: int, queued: int, sim_elapsed: float) -> str:
        frac = done / self.total if self.total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        return (
            f"[{bar}] {done}/{self.total} done  {running} running  {queued} queued  sim {_clock(sim_elapsed)}"
        )

    def update(
        self, done: int, running: int, queued: int, sim_elapsed: float, now: float | None = None
    ) -> None:
        line = self.render(done, running, queued, sim_elapsed)
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._drawn = True
            return
        now = time.monotonic() if now is None else now
        if now - self._last_line >= self.line_interval:
            self._last_line = now
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self, done: int, running: int, queued: int, sim_elapsed: float) -> None:
        line = self.render(done, running, queued, sim_elapsed)
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
