"""Simulated time: one time-scale factor for every delay in the simulated cluster, and one timer heap.

``time_scale=60`` means one simulated minute per real second: pod run times, kubelet start delays, grace
periods, heartbeats, Job deadlines, backoff and TTLs are simulated durations and are all divided by the same
factor. Timestamps written into objects stay real wall-clock time (the API server stamps creationTimestamp with
real time too); a simulated duration between two timestamps is their real difference times ``time_scale``.

:class:`Timers` is the single scheduler for the whole cluster: a heap of wake-up times served by one task,
so 50,000 running pods cost 50,000 heap entries rather than 50,000 sleeping tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fluxqueue.log import get_logger

log = get_logger(__name__)

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)?")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    None: 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go-style duration ("30s", "2m", "1.5h", "1h30m", "250ms"); a bare number is seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"negative duration {text!r}")
        return float(text)
    s = str(text).strip()
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"invalid duration {text!r}")
        if m.group(2) is None and m.end() != len(s):
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total


def rfc3339(ts: float | None = None) -> str:
    """A Kubernetes timestamp (metav1.Time: RFC 3339, second precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def rfc3339_micro(ts: float | None = None) -> str:
    """metav1.MicroTime (Lease renewTime, events.k8s.io eventTime)."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp, None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class SimClock:
    """Converts simulated durations to real ones. ``time_scale`` > 1 runs the simulation faster than life."""

    def __init__(self, time_scale: float = 1.0):
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)

    def real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return max(0.0, sim_seconds) / self.time_scale

    def sim(self, real_seconds: float) -> float:
        """Simulated seconds that ``real_seconds`` of real time represent."""
        return real_seconds * self.time_scale

    @staticmethod
    def now() -> float:
        """Wall-clock time (epoch seconds), what timestamps in objects are made of."""
        return time.time()

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real(sim_seconds))


class TimerHandle:
    __slots__ = ("cancelled", "due")

    def __init__(self, due: float):
        self.due = due
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


Callback = Callable[..., Awaitable[Any] | None]


class Timers:
    """One heap of wake-ups for the whole simulated cluster, run by a single task.

    A callback may be a plain function or a coroutine function; coroutines run as tasks, at most
    ``concurrency`` at once (API calls of different pods overlap, the heap never waits on them).
    """

    def __init__(self, clock: SimClock, concurrency: int = 256):
        self.clock = clock
        self._heap: list[tuple[float, int, TimerHandle, Callback, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sem = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def after(self, sim_seconds: float, fn: Callback, *args: Any) -> TimerHandle:
        """Call ``fn(*args)`` after ``sim_seconds`` of simulated time."""
        return self.at(time.monotonic() + self.clock.real(sim_seconds), fn, *args)

    def at(self, due_monotonic: float, fn: Callback, *args: Any) -> TimerHandle:
        handle = TimerHandle(due_monotonic)
        first = not self._heap or due_monotonic < self._heap[0][0]
        heapq.heappush(self._heap, (due_monotonic, next(self._seq), handle, fn, args))
        if first:
            self._wake.set()
        return handle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for t in list(self._running):
            t.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, handle, fn, args = heapq.heappop(self._heap)
                if not handle.cancelled:
                    self._fire(fn, args)
            if self._heap:
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)  # let the callbacks' tasks and everyone else run
            else:
                await self._wake.wait()

    def _fire(self, fn: Callback, args: tuple[Any, ...]) -> None:
        try:
            result = fn(*args)
        except Exception:
            log.exception("timer callback failed", callback=getattr(fn, "__qualname__", str(fn)))
            return
        if asyncio.iscoroutine(result):
            task = asyncio.get_running_loop().create_task(self._guarded(result))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _guarded(self, coro: Awaitable[Any]) -> None:
        async with self._sem:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer task failed")
