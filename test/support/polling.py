"""Waiting in tests for something the system does on its own (controllers, kubelets) to become true."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

CPUS = os.cpu_count() or 1


class Budget:
    """A time limit in seconds of this machine's fair share, for waits on what the system does on its own.

    A limit only says when to give up on something that will not happen; on a machine running more than
    it has cores (two copies of the suite, a benchmark beside them) the system under test gets a fraction of
    a core and needs more wall time for the same work. Wall time is counted at ``cpus / load`` (the 1-minute
    load average, never faster than wall time), so a wait that passes on an idle machine is not failed by
    load alone, while a real hang still ends."""

    __slots__ = ("_last", "limit", "spent")

    def __init__(self, limit_s: float) -> None:
        self.limit = limit_s
        self.spent = 0.0
        self._last = time.monotonic()

    def exhausted(self) -> bool:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        self.spent += dt / max(1.0, os.getloadavg()[0] / CPUS)
        return self.spent > self.limit


async def eventually(check: Callable[[], object], limit_s: float = 10.0, interval_s: float = 0.03):
    """Poll a sync or async ``check`` until it returns something truthy, and return that."""
    budget = Budget(limit_s)
    last = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if budget.exhausted():
            break
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met in {limit_s}s (last: {last!r})")


def caught_up(informer, obj: dict) -> bool:
    """Whether a simulated cluster's ``informer`` holds ``obj`` at its version or a newer one: every handler
    of the informer (kubelets, controllers' event handlers, run in watch order) has seen it."""
    meta = obj["metadata"]
    held = informer.get(meta.get("namespace", ""), meta["name"])
    rv = int(meta["resourceVersion"])
    return held is not None and int(held["metadata"]["resourceVersion"]) >= rv


async def first_version(api, key, obj: dict, check: Callable[[dict], object], limit_s: float = 10.0) -> dict:
    """The first version of ``obj`` after the one given for which ``check`` holds, read from a watch of the
    API emulator: a state the object holds only for a moment is not missed between two polls."""
    meta = obj["metadata"]

    async def scan() -> dict:
        events = api.client.watch(
            key, namespace=meta.get("namespace"), resource_version=meta["resourceVersion"]
        )
        async with contextlib.aclosing(events):
            async for ev in events:
                seen = ev.get("object") or {}
                if ev.get("type") == "DELETED" and seen["metadata"].get("uid") == meta.get("uid"):
                    raise AssertionError(f"{meta['name']} was deleted first")
                if seen["metadata"].get("uid") == meta.get("uid") and check(seen):
                    return seen
        raise AssertionError("the watch ended")

    return await asyncio.wait_for(scan(), limit_s)
