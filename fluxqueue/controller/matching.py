"""The strategy's view of Fluxion for one pass: jobspecs regenerated against the current graph, matched
one by one or in batches, and verdicts judged against the bare nodes."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from fluxqueue.controller import strategy as strategies
from fluxqueue.controller.context import Context
from fluxqueue.controller.units import scheduling_unit
from fluxqueue.fluxion.client import FluxionError
from fluxqueue.log import get_logger
from fluxqueue.placement.graph import ClusterGraph
from fluxqueue.placement.jobspec import jobspec_for
from fluxqueue.placement.units import UnitError
from fluxqueue.queue.store import Unit

log = get_logger(__name__)

MATCH_BATCH = 32  # units matched per Fluxion round trip (FluxionAdmin.MatchBatch)


class FluxionMatcher:
    """The strategy's view of Fluxion for one pass: jobspecs regenerated against the current graph."""

    def __init__(
        self,
        ctx: Context,
        graph: ClusterGraph,
        capacity: ClusterGraph | None = None,
        fits_cache: dict[Any, tuple[ClusterGraph, tuple[bool, str]]] | None = None,
    ):
        self.ctx = ctx
        self.graph = graph
        self.capacity = capacity or graph
        self.calls = 0
        # what a unit asks (shape) -> (the capacity graph it was judged against, verdict): judged once per
        # cluster shape and unit shape, not per unit every pass (each judgement walks every node: at 2,000
        # queued units and 1,000 nodes that was 40% of the controller's CPU).
        self.fits_cache = fits_cache if fits_cache is not None else {}

    def fits_ever(self, unit: Unit) -> tuple[bool, str]:
        if not self.capacity.nodes:
            return True, ""  # no node is schedulable right now: wait rather than declare it impossible
        key = _fit_shape(unit)
        cached = self.fits_cache.get(key)
        if cached is not None and cached[0] is self.capacity:
            return cached[1]
        verdict = self.capacity.fits_ever(scheduling_unit(unit))
        self.fits_cache[key] = (self.capacity, verdict)
        return verdict

    @property
    def batch_size(self) -> int:
        """Units matched per round trip (MatchBatch is ours; flux-sched's public service matches one by one)."""
        return MATCH_BATCH if self.ctx.match_batching and self.ctx.fluxion.admin is not None else 1

    async def match(self, unit: Unit, reserve: bool) -> Any:
        try:
            spec = jobspec_for(scheduling_unit(unit), self.graph)
        except UnitError as exc:
            return _Unsatisfiable(str(exc))
        self.calls += 1
        started = time.perf_counter()
        result = await self.ctx.fluxion.match(spec, reserve=reserve)
        self._observe(time.perf_counter() - started, [result])
        return self._judged(unit, result)

    async def match_many(
        self, units: list[Unit], reserve: bool, *, stop_after_first_unallocated: bool
    ) -> list[Any]:
        """Match ``units`` in order in one round trip; results for the units matched (a prefix)."""
        specs = []
        for unit in units:
            try:
                specs.append(json.dumps(jobspec_for(scheduling_unit(unit), self.graph)))
            except UnitError as exc:
                if not specs:
                    return [_Unsatisfiable(str(exc))]
                break  # matched up to here; this unit comes first in the next call
        admin = self.ctx.fluxion.admin
        if admin is None:
            return [await self.match(units[0], reserve)]
        started = time.perf_counter()
        try:
            results = await admin.match_batch(
                [(spec, reserve) for spec in specs], stop_after_first_unallocated=stop_after_first_unallocated
            )
        except FluxionError as exc:
            if "UNIMPLEMENTED" not in str(exc):
                raise
            log.warning("Fluxion has no batched matching; matching one unit at a time", error=str(exc))
            self.ctx.match_batching = False
            return [await self.match(units[0], reserve)]
        self.calls += len(results)
        self._observe(time.perf_counter() - started, results)
        return [self._judged(unit, result) for unit, result in zip(units, results, strict=False)]

    def _observe(self, seconds: float, results: list[Any]) -> None:
        if self.ctx.metrics is None or not results:
            return
        with contextlib.suppress(Exception):
            for result in results:
                self.ctx.metrics.observe_match(seconds / len(results), strategies.status_name(result).lower())

    def _judged(self, unit: Unit, result: Any) -> Any:
        if strategies.status_name(result) == strategies.UNSATISFIABLE and self.capacity is not self.graph:
            # Fluxion judged the graph minus foreign load; if the bare nodes could hold it, it only waits.
            ok, _ = self.capacity.fits_ever(scheduling_unit(unit))
            if ok:
                return _Busy("other workloads occupy the nodes it needs")
        return result


def _fit_shape(unit: Unit) -> tuple:
    """Everything ClusterGraph.fits_ever reads of a unit."""
    return (unit.size, unit.exclusive, json.dumps(unit.pod_sets, sort_keys=True))


class _Busy:
    status = "BUSY"

    def __init__(self, message: str):
        self.message = message


class _Unsatisfiable:
    status = "UNSATISFIABLE"

    def __init__(self, message: str):
        self.message = message
