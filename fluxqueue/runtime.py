"""Process-wide tuning for fluxqueue's long-running processes (controller, Fluxion service, simulator).

CPython's cyclic garbage collector, at its default thresholds (700, 10, 10), ran a full collection of the
controller's heap every two or three seconds at a thousand pods a second of watch events (each event's
decoded object survives in an informer cache), 70-200 ms each: a tenth of the controller's CPU and a stall
of every request in flight. The objects we churn (decoded JSON) are acyclic and freed by reference counting;
collections are only needed for the rarer cycles (asyncio tasks and exceptions), so we collect far less often,
and the heap built at start-up (caches after the initial list) is moved out of the collector's sight.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Young objects allocated before a generation-0 collection; collections of gen 0 before gen 1; gen 1 before
# a full one (CPython additionally waits until the survivors since the last full collection are 25% of the
# heap it last saw).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_heap() -> None:
    """Collect once, then exclude every object alive now from future collections (``gc.freeze``): call it
    after start-up, when the long-lived state (informer caches, the cluster graph) has been built."""
    gc.collect()
    gc.freeze()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop our processes run on: uvloop when it is installed (libuv's I/O and a C TLS layer: the
    controller and the simulator spend a fifth of their CPU in asyncio's socket and SSL code), else asyncio's.
    ``FLUXQUEUE_EVENT_LOOP=asyncio`` forces the standard loop."""
    if os.environ.get("FLUXQUEUE_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on :func:`loop_factory`'s loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
