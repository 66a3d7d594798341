"""Queue objects read into QueueSpecs, and which queue a unit belongs to.

A unit belongs to the queue its ``fluxqueue.io/queue`` label names; without one (the label is stored as
``default``), to the Queue whose ``spec.namespaces`` lists its namespace; else to the built-in default queue,
which has no quota and no limit (with no Queue objects at all, that is every unit: today's single queue).
A label naming a queue that does not exist leaves the unit waiting with that said on its FluxJob.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.queues import DEFAULT_QUEUE
from fluxqueue.queues.share import Amounts, parse_amounts

NEVER, LOWER_PRIORITY = "Never", "LowerPriority"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    namespaces: tuple[str, ...] = ()
    quota: Amounts = field(default_factory=dict)  # absent resource: no guarantee
    limit: Amounts = field(default_factory=dict)  # absent resource: no cap
    weight: float = 1.0
    within_queue: str = NEVER  # preemption inside the queue (Kueue's withinClusterQueue)
    reclaim: bool = True  # evict other queues' borrowed work to get the quota back
    problems: tuple[str, ...] = ()  # what is wrong with the object (shown on its status)
    builtin: bool = False  # the default queue nobody declared

    def over_limit(self, usage: Mapping[str, int]) -> list[str]:
        """Resources where ``usage`` exceeds the limit."""
        return [r for r, cap in self.limit.items() if usage.get(r, 0) > cap]


BUILTIN_DEFAULT = QueueSpec(DEFAULT_QUEUE, builtin=True)


def queue_spec(obj: Mapping[str, Any]) -> QueueSpec:
    """A Queue object (its spec) as a QueueSpec; problems are collected, never raised (a bad Queue must not
    stop scheduling: its bad fields are ignored and named on its status)."""
    name = (obj.get("metadata") or {}).get("name") or ""
    spec = obj.get("spec") or {}
    quota, problems = parse_amounts(spec.get("quota"))
    limit, limit_problems = parse_amounts(spec.get("limit"))
    problems = [f"quota: {p}" for p in problems] + [f"limit: {p}" for p in limit_problems]
    for r, cap in limit.items():
        if quota.get(r, 0) > cap:
            problems.append(f"limit: {r} is below the quota (the limit wins)")
    weight = 1.0
    raw_weight = spec.get("weight", 1)
    try:
        weight = float(raw_weight)
        if weight <= 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"weight must be a positive number, got {raw_weight!r}")
        weight = 1.0
    preemption = spec.get("preemption") or {}
    within = preemption.get("withinQueue") or NEVER
    if within not in (NEVER, LOWER_PRIORITY):
        problems.append(f"preemption.withinQueue must be Never or LowerPriority, got {within!r}")
        within = NEVER
    namespaces = tuple(str(n) for n in spec.get("namespaces") or ())
    return QueueSpec(
        name=name,
        namespaces=namespaces,
        quota=quota,
        limit=limit,
        weight=weight,
        within_queue=within,
        reclaim=bool(preemption.get("reclaim", True)),
        problems=tuple(problems),
    )


class QueueBook:
    """Every declared queue, and the namespace -> queue map. Empty: queues are off (one default queue)."""

    def __init__(self, specs: Iterable[QueueSpec] = ()):
        self.queues: dict[str, QueueSpec] = {}
        self.by_namespace: dict[str, str] = {}
        self.conflicts: dict[str, list[str]] = {}  # namespace -> every queue listing it (when more than one)
        for spec in sorted(specs, key=lambda s: s.name):
            self.queues[spec.name] = spec
            for ns in spec.namespaces:
                first = self.by_namespace.setdefault(ns, spec.name)
                if first != spec.name:
                    self.conflicts.setdefault(ns, [first]).append(spec.name)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> QueueBook:
        return cls(queue_spec(o) for o in objects)

    def __bool__(self) -> bool:
        return bool(self.queues)

    def queue_of(self, namespace: str, label: str | None) -> str:
        """The queue a unit belongs to (its name; it may be unknown: see :meth:`spec`)."""
        if label and label != DEFAULT_QUEUE:
            return label
        return self.by_namespace.get(namespace, DEFAULT_QUEUE)

    def spec(self, name: str) -> QueueSpec | None:
        """The queue called ``name``; the built-in default when none is declared; None when unknown."""
        found = self.queues.get(name)
        if found is None and name == DEFAULT_QUEUE:
            return BUILTIN_DEFAULT
        return found

    def all(self) -> list[QueueSpec]:
        """Every queue, the built-in default included."""
        out = list(self.queues.values())
        if DEFAULT_QUEUE not in self.queues:
            out.append(BUILTIN_DEFAULT)
        return out
