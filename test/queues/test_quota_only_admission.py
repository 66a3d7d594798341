"""Quota-only admission (``queue_admission = "quota"``, the benchmark's Kueue-like comparison): a unit the
quota arithmetic admits keeps holding its quota while Fluxion cannot place it; node-aware admission (the
default) never charges an unplaced unit."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from fluxqueue.controller.queueing import QueueGate, QuotaMatcher
from fluxqueue.controller.settings import ControllerSettings
from fluxqueue.queues.admission import PassQuotas
from fluxqueue.queues.share import CPU, GPU, MEMORY
from fluxqueue.queues.spec import QueueBook

BOOK = QueueBook.from_objects(
    [{"metadata": {"name": "team-a"}, "spec": {"namespaces": ["a"], "quota": {"cpu": "8"}}}]
)


def unit(i: int, cpus: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=i, namespace="a", queue=None, pod_sets=[{"count": 1, "cpu_millis": cpus * 1000, "memory_bytes": 0}]
    )


class Busy:
    calls = 0
    batch_size = 1

    async def match(self, unit, reserve):
        return SimpleNamespace(status="BUSY")


def gate_for(mode: str) -> QueueGate:
    ctx = SimpleNamespace(
        settings=ControllerSettings(dsn="x", queue_admission=mode), metrics=None, queues=None
    )
    return QueueGate(ctx)


def quotas() -> PassQuotas:
    return PassQuotas(BOOK, {}, {CPU: 8000, MEMORY: 2**40, GPU: 0})


def test_quota_only_admission_holds_quota_while_unplaceable():
    gate = gate_for("quota")
    q = gate.last = quotas()
    m = QuotaMatcher(Busy(), q, gate)
    first, second = unit(1, 6), unit(2, 6)
    assert asyncio.run(m.match(first, False)).status == "BUSY"
    assert gate.admitted_unplaced == 1 and 1 in gate.held
    assert q.usage["team-a"][CPU] == 6000  # still holding
    assert asyncio.run(m.match(second, False)).status == "QUOTA"  # the held unit's quota is taken
    again = asyncio.run(m.match(first, False))  # asked again: not charged twice
    assert again.status == "BUSY" and q.usage["team-a"][CPU] == 6000 and gate.admitted_unplaced == 1


def test_node_aware_admission_never_charges_an_unplaced_unit():
    gate = gate_for("nodes")
    q = gate.last = quotas()
    m = QuotaMatcher(Busy(), q, gate)
    assert asyncio.run(m.match(unit(1, 6), False)).status == "BUSY"
    assert asyncio.run(m.match(unit(2, 6), False)).status == "BUSY"
    assert gate.admitted_unplaced == 0 and not gate.held and q.usage["team-a"][CPU] == 0
