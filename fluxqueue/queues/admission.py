"""One pass's quota book: whether each unit may start within its queue's limit and quota or by borrowing,
and the order in which the pass looks at units.

Rules (issue 16; Kueue's ClusterQueue admission with the cluster as the one cohort):

* never above ``limit`` (borrowing included);
* within ``quota``: admitted (Fluxion then decides where, or that it must wait: quota arithmetic alone never
  starts a unit, kueue#407);
* above quota: only by borrowing capacity nobody holds (the nodes' total minus every queue's usage); a
  resource the quota does not name is not guaranteed and not counted here (the unit borrows it wherever the
  nodes have it: Fluxion decides);
* order: units within their quota first (each queue's own order: priority, then submit time), then the
  borrowers, one unit at a time from the queue with the lowest fair share (:func:`.share.fair_share`), as if
  every unit taken were placed, so one pass divides what is lent by weight.

Pure: the caller gives usage (what holding units ask, per queue) and capacity, and charges each unit Fluxion
placed (:meth:`PassQuotas.charge`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fluxqueue.queues.share import (
    RESOURCES,
    Amounts,
    DecayedUsage,
    add,
    describe_amount,
    fair_share,
    unit_demand,
)
from fluxqueue.queues.spec import QueueBook, QueueSpec

UNKNOWN, LIMIT, QUOTA = "UnknownQueue", "ExceedsLimit", "WaitingForQuota"


@dataclass(frozen=True)
class Refusal:
    """Why a unit may not start now, in plain words, and a condition-style reason."""

    kind: str  # UNKNOWN | LIMIT | QUOTA
    message: str


class PassQuotas:
    def __init__(
        self,
        book: QueueBook,
        usage: Mapping[str, Mapping[str, int]],
        capacity: Mapping[str, int],
        decayed: Mapping[str, DecayedUsage] | None = None,
    ):
        self.book = book
        self.usage: dict[str, Amounts] = {q: add(u, {}) for q, u in usage.items()}
        self.capacity = dict(capacity)
        self.decayed = decayed or {}
        self.total: Amounts = {r: 0 for r in RESOURCES}
        for u in self.usage.values():
            self.total = add(self.total, u)
        self._demand: dict[int, Amounts] = {}

    # ---- one unit -------------------------------------------------------------------------------------

    def queue_of(self, unit: Any) -> str:
        return self.book.queue_of(unit.namespace, unit.queue)

    def demand(self, unit: Any) -> Amounts:
        d = self._demand.get(unit.id)
        if d is None:
            d = self._demand[unit.id] = unit_demand(unit.pod_sets)
        return d

    def check(self, unit: Any) -> Refusal | None:
        """None when ``unit`` may start now as far as its queue is concerned."""
        name = self.queue_of(unit)
        spec = self.book.spec(name)
        if spec is None:
            return Refusal(
                UNKNOWN,
                f"queue {name} does not exist (named by the fluxqueue.io/queue label); "
                f"waiting until a Queue of that name is created",
            )
        return _check(spec, self.demand(unit), self.usage.get(name, {}), self.total, self.capacity)

    def check_without(self, unit: Any, gone: Sequence[tuple[str, Mapping[str, int]]]) -> Refusal | None:
        """:meth:`check` as if the holders ``gone`` ((queue, demand) each) held nothing (preemption)."""
        name = self.queue_of(unit)
        spec = self.book.spec(name)
        if spec is None:
            return self.check(unit)
        usage = dict(self.usage.get(name, {}))
        total = dict(self.total)
        for queue, demand in gone:
            total = add(total, demand, -1)
            if queue == name:
                usage = add(usage, demand, -1)
        return _check(spec, self.demand(unit), usage, total, self.capacity)

    def charge(self, unit: Any, sign: int = 1) -> None:
        """Count ``unit`` as holding (or, with ``sign=-1``, no longer holding) in its queue."""
        name = self.queue_of(unit)
        d = self.demand(unit)
        self.usage[name] = add(self.usage.get(name, {}), d, sign)
        self.total = add(self.total, d, sign)

    def share(self, name: str, usage: Mapping[str, int] | None = None) -> float:
        spec = self.book.spec(name)
        if spec is None:
            return 0.0
        held = usage if usage is not None else self.usage.get(name, {})
        decayed = self.decayed.get(name)
        charged = decayed.charged(held) if decayed is not None else {r: float(held.get(r, 0)) for r in held}
        return fair_share(charged, spec.quota, self.capacity, spec.weight)

    # ---- the pass's order -----------------------------------------------------------------------------

    def order(self, units: Sequence[Any]) -> list[Any]:
        """``units`` (in the store's order) in the order the pass should look at them (module docstring)."""
        usage = {q: dict(u) for q, u in self.usage.items()}
        total = dict(self.total)
        first: list[Any] = []
        borrowers: dict[str, deque] = {}
        unknown: list[Any] = []
        for unit in units:
            name = self.queue_of(unit)
            spec = self.book.spec(name)
            if spec is None:
                unknown.append(unit)
                continue
            d = self.demand(unit)
            held = usage.get(name, {})
            after = add(held, d)
            if within_quota(spec.quota, after, d) and _check(spec, d, held, total, self.capacity) is None:
                first.append(unit)
                usage[name] = after
                total = add(total, d)
            else:
                borrowers.setdefault(name, deque()).append(unit)
        out = first
        later: list[Any] = []  # refused even if nothing else were placed: after every unit that may start
        while borrowers:
            name = min(borrowers, key=lambda q: (self.share(q, usage.get(q, {})), q))
            unit = borrowers[name].popleft()
            if not borrowers[name]:
                del borrowers[name]
            spec = self.book.spec(name)
            assert spec is not None
            d = self.demand(unit)
            if _check(spec, d, usage.get(name, {}), total, self.capacity) is None:
                out.append(unit)
                usage[name] = add(usage.get(name, {}), d)
                total = add(total, d)
            else:
                later.append(unit)
        return out + later + unknown


def within_quota(quota: Mapping[str, int], after: Mapping[str, int], demand: Mapping[str, int]) -> bool:
    """Whether a unit asking ``demand`` stays within ``quota`` (``after``: its queue's usage with it): of every
    resource the quota names and the unit asks for, and the quota names at least one of them. A resource the
    quota does not name is not guaranteed: the unit borrows it, as long as the nodes have it."""
    named = [r for r in RESOURCES if demand.get(r, 0) > 0 and r in quota]
    return bool(named) and all(after.get(r, 0) <= quota[r] for r in named)


def _check(
    spec: QueueSpec,
    demand: Mapping[str, int],
    held: Mapping[str, int],
    total: Mapping[str, int],
    capacity: Mapping[str, int],
) -> Refusal | None:
    after = add(held, demand)
    for r in spec.over_limit(after):
        if demand.get(r, 0) <= 0:
            continue  # over its limit already (the limit was lowered): only what it adds counts
        cap = spec.limit[r]
        left = max(0, cap - held.get(r, 0))
        return Refusal(
            LIMIT,
            f"waiting within the limit of {spec.name}: needs {describe_amount(r, demand[r])}, "
            f"{_of(r, left, cap)} left under its limit",
        )
    if within_quota(spec.quota, after, demand):
        return None
    for r in RESOURCES:
        d = demand.get(r, 0)
        if d <= 0 or r not in spec.quota or after.get(r, 0) <= spec.quota[r]:
            continue  # a resource the quota does not name is Fluxion's alone to grant
        # The part above quota is borrowed from what nobody holds (beyond the queue's own unused quota).
        quota = spec.quota.get(r, 0)
        free = max(0, quota - held.get(r, 0))
        borrowed = after[r] - max(held.get(r, 0), quota)
        lendable = max(0, capacity.get(r, 0) - total.get(r, 0) - free)
        if borrowed > lendable:
            return Refusal(
                QUOTA,
                f"waiting for quota in {spec.name}: needs {describe_amount(r, d)}, {_of(r, free, quota)} "
                f"free; could borrow {_bare(r, lendable)}",
            )
    return None


def _bare(resource: str, amount: int) -> str:
    """The number of a described amount (``4`` of ``4 CPUs``; ``16Gi`` of ``16Gi memory``)."""
    return describe_amount(resource, amount).split(" ")[0]


def _of(resource: str, part: int, whole: int) -> str:
    """``4 of 64`` (CPUs and GPUs counted, memory in its unit)."""
    return f"{_bare(resource, part)} of {_bare(resource, whole)}"
