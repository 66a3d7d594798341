"""Held units (``fluxqueue.io/dependency``), decided at the start of each pass while any is held: released into
the queue, told what they wait for, or ended when they can never run (Slurm's DependencyNeverSatisfied: the
unit is Cancelled, its workload stays suspended and never runs; a pod group's pods are deleted).

What decides is :func:`fluxqueue.dependencies.resolve.decide`, a pure function of the database's rows, so a
restart loses nothing: the next leader's first pass decides again from the same rows. Ends wake the pass
(the units_state_history NOTIFY). With no unit held nothing is read: units without a dependency cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from fluxqueue.controller.context import Context
from fluxqueue.controller.end import Ender
from fluxqueue.controller.pods import unit_pods
from fluxqueue.controller.status import StatusWriter
from fluxqueue.controller.units import fluxjob_name
from fluxqueue.dependencies.resolve import HOLD, NEVER, RELEASE, HeldUnit, Peer, Target, decide
from fluxqueue.dependencies.spec import AFTER, SINGLETON, Dependency
from fluxqueue.kube.client import APIError
from fluxqueue.log import get_logger
from fluxqueue.queue.store import CANCELLED, Unit
from fluxqueue.workloads.registry import KINDS, workload

log = get_logger(__name__)

NEVER_SATISFIED = "DependencyNeverSatisfied"  # the Event reason (Slurm's pending reason)


class DependencyResolver:
    def __init__(self, ctx: Context, end: Ender, status: StatusWriter):
        self.ctx = ctx
        self.end = end
        self.status = status
        self.may_hold = True  # whether a unit may be held (unknown after a start: look once)
        self.waits_for_starts = False  # a held unit waits for a target to start (placing does not NOTIFY)
        self._due: asyncio.TimerHandle | None = None

    def held_submitted(self) -> None:
        """A unit was just submitted held: decide it in the next pass."""
        self.may_hold = True
        self.ctx.wake("held unit")

    async def resolve(self) -> None:
        if not self.may_hold:
            return
        ctx = self.ctx
        rows = await ctx.store.held()
        if not rows:
            self.may_hold = self.waits_for_starts = False
            return
        by_id: dict[int, Unit] = {}
        held: list[HeldUnit] = []
        for unit, terms in rows:
            by_id[unit.id] = unit
            dependency = Dependency.from_rows(unit.dependency or "", terms)
            held.append(HeldUnit(unit.id, unit.namespace, unit.object_name, dependency))
        targets, peers = await self._states(held)
        now = datetime.now(UTC)
        verdicts = decide(held, targets, peers, now, ctx.settings.time_scale)
        released = await ctx.store.release_held(
            [(v.unit_id, v.reason) for v in verdicts if v.outcome == RELEASE]
        )
        for unit in released:
            log.info("dependency satisfied; queued", unit=unit.key, reason=unit.reason)
            self.status.reasons.pop(unit.id, None)
        waiting = [v for v in verdicts if v.outcome == HOLD]
        changed = {
            u.id: u for u in await ctx.store.set_held_reasons([(v.unit_id, v.reason) for v in waiting])
        }
        for v in waiting:
            unit = changed.get(v.unit_id) or by_id[v.unit_id]
            first = v.unit_id not in self.status.published
            if v.unit_id in changed or first:
                await self.status.publish(unit)
            if first and v.unit_id in self.status.published:
                # Once, when its holding is first shown (`kubectl describe fj`); later reasons are its status.
                await ctx.actions.event([ctx.actions.fluxjob_ref(unit)], "Held", v.reason)
        for v in verdicts:
            if v.outcome == NEVER:
                await self._never(by_id[v.unit_id], v.reason)
        self.may_hold = bool(waiting)
        still = {v.unit_id for v in waiting}
        self.waits_for_starts = any(
            t.condition == AFTER for h in held if h.unit_id in still for t in h.dependency.terms
        )
        self._wake_when_due(min((v.due for v in waiting if v.due is not None), default=None), now)

    async def _never(self, unit: Unit, reason: str) -> None:
        """End a unit whose dependency can never hold. Its workload object stays as it is (a Job suspended,
        as Slurm leaves the job pending); a unit made of pods only (a pod group) has its pods deleted, as a
        group that never fills does: gated pods of no live unit would make a new group at the next start."""
        done = await self.end.finish(unit, CANCELLED, reason, warning=True, event=NEVER_SATISFIED)
        if done is None or not workload(done.kind).owned_by_members:
            return
        pods = unit_pods(self.ctx, done)
        status = self.end.status
        if done.id in status.missed:
            # Ended before its FluxJob was created (members still joining under load): the FluxJob is owned by
            # the pods deleted below, so its status must land first or nobody ever sees why it ended.
            if await self.ctx.actions.ensure_fluxjob(done, pods) is not None:
                status.missed.discard(done.id)
                status.published.pop(done.id, None)
                await status.publish(done)
        for pod in pods:
            await self.ctx.actions.event([pod], NEVER_SATISFIED, reason, "Warning")
            with contextlib.suppress(APIError):
                await self.ctx.actions.delete_pod(pod)

    async def _states(
        self, held: list[HeldUnit]
    ) -> tuple[dict[tuple[str, str], Target], dict[tuple[str, str], list[Peer]]]:
        """The newest unit of each name held units wait for, and the units sharing each singleton name."""
        wanted = {
            (h.namespace, t.target) for h in held for t in h.dependency.terms if t.condition != SINGLETON
        }
        singles = {
            (h.namespace, t.target) for h in held for t in h.dependency.terms if t.condition == SINGLETON
        }
        keys = wanted | singles
        fluxjobs = {(ns, fluxjob_name(kind.kind, name)) for ns, name in keys for kind in KINDS}
        rows = [
            r
            for r in await self.ctx.store.units_named(fluxjobs)
            if (r["namespace"], r["object_name"]) in keys
        ]
        targets: dict[tuple[str, str], Target] = {}
        peers: dict[tuple[str, str], dict[int, Peer]] = {}
        for r in sorted(rows, key=lambda r: r["id"]):
            key = (r["namespace"], r["object_name"])
            if key in wanted:
                targets[key] = Target(r["id"], r["state"], r["scheduled_at"], r["finished_at"])
            if key in singles:
                peers.setdefault(key, {})[r["id"]] = Peer(r["id"], r["state"], bool(r["singleton"]))
        for r in await self.ctx.store.singleton_peers(singles):
            peers.setdefault((r["namespace"], r["target"]), {})[r["id"]] = Peer(r["id"], r["state"], True)
        return targets, {k: list(v.values()) for k, v in peers.items()}

    def _wake_when_due(self, due: datetime | None, now: datetime) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if due is not None:
            delay = max(0.0, (due - now).total_seconds())
            self._due = asyncio.get_running_loop().call_later(delay, self.ctx.wake, "dependency due")
