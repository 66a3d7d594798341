"""Process-wide tuning for fluxqueue's long-running processes (controller, Fluxion service, simulator).

CPython's cyclic garbage collector, at its default thresholds (700, 10, 10), ran a full collection of the
controller's heap every two or three seconds at a thousand pods a second of watch events (each event's
decoded object survives in an informer cache), 70-200 ms each: a tenth of the controller's CPU and a stall
of every request in flight. The objects we churn (decoded JSON) are acyclic and freed by reference counting;
collections are only needed for the rarer cycles (asyncio tasks and exceptions), so we collect far less often,
and the heap built at start-up (caches after the initial list) is moved out of the collector's sight.
"""

from __future__ import annotations

import gc

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
