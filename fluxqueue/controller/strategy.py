"""Scheduling strategies: which Fluxion call to make for each pending unit, in queue order.

Pure planning over a matcher (no database, no Kubernetes): ``plan()`` walks the units in scheduling order,
asks the matcher, and yields one decision per unit. The loop persists and acts on each decision.

* ``fcfs``: allocate only; the first unit that does not fit blocks everyone behind it.
* ``easy`` (EASY backfill, Lifka 1995; flux-sched's ``queue-policy=easy``): the first blocked unit asks
  ``allocate_orelse_reserve`` and, if reserved, holds its future resources in Fluxion's planner; every later
  unit asks a plain ``allocate``, which only succeeds where it cannot delay that reservation (its duration
  ends before the reserved start, or it uses other resources). Depth 1.
* ``conservative``: every blocked unit reserves, so no backfill delays any earlier unit.

Units that could never fit the graph (judged per node by ``fits_ever``) are rejected up front and never block
anyone. Reservations are only for this pass: the loop cancels them all at its end and never treats a
reserved result as an allocation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fluxqueue.placement.podsets import describe_pod_sets, pod_sets_from_json
from fluxqueue.queue.store import Unit

ALLOCATED, RESERVED, BUSY, UNSATISFIABLE = "ALLOCATED", "RESERVED", "BUSY", "UNSATISFIABLE"
# Its tenant queue does not let it start now (fluxqueue.controller.queueing): it waits without asking Fluxion,
# blocking nobody and reserving nothing (another queue's units are not held behind it).
QUOTA = "QUOTA"


class Matcher(Protocol):
    def fits_ever(self, unit: Unit) -> tuple[bool, str]: ...

    async def match(self, unit: Unit, reserve: bool) -> Any:
        """A result with ``.status`` (name in ALLOCATED/RESERVED/BUSY/UNSATISFIABLE/ERROR), ``.jobid``, ..."""


@dataclass(frozen=True)
class Allocate:
    unit: Unit
    result: Any


@dataclass(frozen=True)
class Reserve:
    unit: Unit
    result: Any


@dataclass(frozen=True)
class Wait:
    unit: Unit
    reason: str
    matched: bool = True  # Fluxion was asked this pass (False: behind a blocker, or past the queue depth)


@dataclass(frozen=True)
class Reject:
    """Never satisfiable on this cluster."""

    unit: Unit
    reason: str


Decision = Allocate | Reserve | Wait | Reject


def status_name(result: Any) -> str:
    status = getattr(result, "status", result)
    return getattr(status, "name", str(status)).upper()


def describe_need(unit: Unit) -> str:
    """``1 pod of 2 cpu, 1Gi memory`` / ``3 pods: launcher 1 x 8 CPU, worker 2 x 1 CPU``."""
    sets = pod_sets_from_json(unit.pod_sets)
    whole = " on whole nodes" if unit.exclusive else ""
    if len(sets) != 1:
        return f"{unit.size} pods: {describe_pod_sets(sets)}{whole}"
    p = sets[0].per_pod
    parts = [f"{p.cpu_milli / 1000:g} cpu", f"{p.memory / 2**30:g}Gi memory"]
    if p.gpus:
        parts.append(f"{p.gpus} gpu")
    pods = f"{unit.size} pods" if unit.size != 1 else "1 pod"
    return f"{pods} of {', '.join(parts)}{whole}"


async def plan(
    strategy: str, units: Sequence[Unit], matcher: Matcher, depth: int = 0
) -> AsyncIterator[Decision]:
    """Decisions for ``units`` in order. ``depth`` > 0 bounds the Fluxion calls of one pass (flux-sched's
    qmanager ``queue-depth``): units past it wait for a later pass without being matched.

    A matcher with ``match_many`` gets runs of consecutive units in one call, with the same outcome as one
    call per unit: a run shares its reserve flag, and where the next unit's call would depend on an outcome
    (fcfs: a unit that does not fit blocks the rest; easy: the first reservation turns the rest into plain
    allocations) the run stops after the first unit that is not allocated and the rest is planned again.
    """
    if strategy not in ("fcfs", "easy", "conservative"):
        raise ValueError(f"unknown strategy {strategy!r}")
    match_many = getattr(matcher, "match_many", None)
    batch = max(1, int(getattr(matcher, "batch_size", 1))) if match_many is not None else 1
    head_reserved: Unit | None = None  # easy: the unit holding the one reservation
    blocker: Unit | None = None  # fcfs: the first unit that did not fit
    tried = 0
    units = list(units)
    i = 0
    while i < len(units):
        unit = units[i]
        ok, why = matcher.fits_ever(unit)
        if not ok:
            yield Reject(unit, why)
            i += 1
            continue
        if blocker is not None:
            yield Wait(unit, f"waiting behind {blocker.key} (first come, first served)", matched=False)
            i += 1
            continue
        if depth and tried >= depth:
            yield Wait(
                unit,
                f"waiting for {describe_need(unit)}; beyond the {depth} units considered per pass",
                matched=False,
            )
            i += 1
            continue
        reserve = strategy == "conservative" or (strategy == "easy" and head_reserved is None)
        stop_early = strategy == "fcfs" or (strategy == "easy" and head_reserved is None)
        run = [unit]
        j = i + 1
        while len(run) < batch and j < len(units) and (not depth or tried + len(run) < depth):
            if not matcher.fits_ever(units[j])[0]:
                break  # rejected without a call: the run ends before it, so decisions stay in order
            run.append(units[j])
            j += 1
        if match_many is not None and len(run) > 1:
            results = await match_many(run, reserve, stop_after_first_unallocated=stop_early)
            if not results:  # a matcher that made no call at all: one at a time, so the plan moves on
                results = [await matcher.match(unit, reserve)]
        else:
            results = [await matcher.match(unit, reserve)]
        for unit, result in zip(run, results, strict=False):
            tried += 1
            i += 1
            status = status_name(result)
            if status == QUOTA:
                yield Wait(unit, result.message, matched=False)
            elif status == ALLOCATED:
                yield Allocate(unit, result)
            elif status == RESERVED:
                if strategy == "easy":
                    head_reserved = unit
                yield Reserve(unit, result)
            elif status == UNSATISFIABLE:
                yield Reject(
                    unit, getattr(result, "message", "") or "Fluxion says it can never fit the cluster"
                )
            elif status == BUSY:
                need = describe_need(unit)
                if strategy == "fcfs":
                    blocker = unit
                    yield Wait(unit, f"waiting for {need}")
                elif head_reserved is not None and head_reserved is not unit:
                    yield Wait(
                        unit,
                        f"waiting for {need}; cannot start now without delaying {head_reserved.key}",
                    )
                else:
                    yield Wait(unit, f"waiting for {need}")
            else:
                message = getattr(result, "message", "") or status
                yield Wait(unit, f"matcher error: {message}")
