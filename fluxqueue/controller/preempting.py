"""Preemption for tenant queues, at the end of a pass: a unit its queue admits but Fluxion could not place
gets room made for it by evicting whole units, chosen so that it becomes placeable on real nodes
(:mod:`fluxqueue.queues.preemption`), confirmed with Fluxion, recorded in PostgreSQL, then evicted.

* reclaim: a unit within its queue's quota evicts units of queues that borrow (hold more than their quota);
* priority: in a queue with ``preemption.withinQueue: LowerPriority``, a unit evicts lower-priority units of
  its own queue.

Order of effects (crash safety): victims chosen -> Fluxion asked (the victims' jobs cancelled, the waiting
unit matched, that match cancelled, Fluxion reloaded from the database before the next match, so nothing of
the what-if remains) -> the decision written (``fluxqueue.preemptions``) -> each victim ended with an Event
and its pods deleted -> the rows marked evicted. A controller stopped in between finishes the written
evictions when it leads again (:meth:`Preempter.resume`); the waiting unit is placed by a later pass, once
the victims' pods are gone and their allocations given back (the normal end of a unit), never onto
resources still in use. One preemptor per pass, and none while an earlier one's victims still hold.

How a victim is evicted depends on its kind: a Job, JobSet or MPIJob is suspended again and requeued with its
original submit time (:meth:`fluxqueue.controller.end.Ender.preempt`: its own controller deletes the pods
within their grace period, not counted as failures); a bare pod or a pod group is ended (Cancelled) and its
pods deleted, since a pod cannot be suspended. Either way an Event on the victim says why.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import asyncpg

from fluxqueue.controller import strategy as strategies
from fluxqueue.controller.context import Context
from fluxqueue.controller.pods import unit_pods
from fluxqueue.controller.units import scheduling_unit
from fluxqueue.kube.client import APIError
from fluxqueue.log import get_logger
from fluxqueue.placement.graph import ClusterGraph
from fluxqueue.placement.jobspec import jobspec_for
from fluxqueue.placement.podsets import pod_sets_from_json
from fluxqueue.placement.units import UnitError
from fluxqueue.queue.store import ACTIVE_STATES, CANCELLED, HOLDING_STATES, Unit
from fluxqueue.queues.admission import PassQuotas, within_quota
from fluxqueue.queues.preemption import Holder, Node, choose_victims
from fluxqueue.queues.share import RESOURCES, add, unit_demand
from fluxqueue.queues.spec import LOWER_PRIORITY
from fluxqueue.workloads.registry import workload

log = get_logger(__name__)

RECLAIM, PRIORITY = "reclaim", "priority"


class Preempter:
    def __init__(self, ctx: Context, end: Any, graphs: Any):
        self.ctx = ctx
        self.end = end  # fluxqueue.controller.end.Ender
        self.graphs = graphs  # fluxqueue.controller.fluxion_sync.GraphKeeper
        self.resumed = False
        # preemptor -> the holders it saw when Fluxion refused its victims: not asked again until they change
        self.refused: dict[int, frozenset[int]] = {}
        self.evictions = 0

    async def resume(self) -> None:
        """Carry out the evictions a controller decided and did not finish (decisions are written first)."""
        rows = await self.ctx.store.unevicted_preemptions()
        done = []
        for row in rows:
            victim = await self.ctx.store.get(row["victim_id"])
            if victim is not None and victim.state in HOLDING_STATES:
                alloc = await self.ctx.store.allocation(victim.id)
                if alloc is not None and alloc.allocated_at > row["decided_at"]:
                    done.append(
                        row["id"]
                    )  # evicted, requeued and placed again since: that run is not the one
                    continue
            if await self._evict(victim, row["reason"]):
                done.append(row["id"])
        await self.ctx.store.mark_evicted(done)
        self.resumed = len(done) == len(rows)  # an eviction that failed is tried again next pass
        if rows:
            log.info("finished evictions decided earlier", victims=len(done), left=len(rows) - len(done))

    async def run(self, quotas: PassQuotas, blocked: list[Unit], graph: ClusterGraph) -> bool:
        """Make room for the first unit of ``blocked`` (queue-admitted, not placeable) that may preempt;
        returns whether victims were evicted."""
        if not self.resumed:
            await self.resume()
        if not blocked or not graph.nodes:
            return False
        store = self.ctx.store
        busy = await store.preempting()
        rows: list[dict] | None = None
        for unit in blocked:
            if unit.id in busy:
                continue  # its room is being made
            name = quotas.queue_of(unit)
            spec = quotas.book.spec(name)
            if spec is None:
                continue
            demand = quotas.demand(unit)
            after = add(quotas.usage.get(name, {}), demand)
            reclaim = spec.reclaim and not spec.over_limit(after) and within_quota(spec.quota, after, demand)
            priority = spec.within_queue == LOWER_PRIORITY
            if not (reclaim or priority):
                continue
            if rows is None:
                rows = await store.holders()
            seen = frozenset(r["id"] for r in rows)
            if self.refused.get(unit.id) == seen:
                continue
            chunk = graph.memory_chunk_bytes
            holders = {r["id"]: _holder(r, chunk) for r in rows}
            causes: dict[int, str] = {}
            for r in rows:
                if r["state"] not in HOLDING_STATES or r["preempted"]:
                    continue  # ended or preempted (its pods stopping), or a victim of this placement already
                theirs = quotas.book.queue_of(r["namespace"], r["queue"])
                if reclaim and theirs != name and self._borrowing(quotas, theirs, demand):
                    causes[r["id"]] = RECLAIM
                elif priority and theirs == name and r["priority"] < unit.priority:
                    causes[r["id"]] = PRIORITY
            if not causes:
                continue
            nodes = [
                Node(n.name, (n.cores, n.memory_chunks, n.gpus), n.labels, n.taints)
                for n in graph.nodes.values()
            ]
            gone = {
                r["id"]: (quotas.book.queue_of(r["namespace"], r["queue"]), unit_demand(r["pod_sets"]))
                for r in rows
                if r["id"] in causes
            }
            victims = choose_victims(
                pod_sets_from_json(unit.pod_sets),
                unit.exclusive,
                nodes,
                list(holders.values()),
                [holders[i] for i in causes],
                chunk,
                # and its queue lets it start once they are gone (quota, limit, what may be borrowed)
                enough=lambda vs: quotas.check_without(unit, [gone[v.unit_id] for v in vs]) is None,  # noqa: B023
            )
            if not victims:
                continue  # placeable already (Fluxion's planner will say when) or no set would do
            by_id = {r["id"]: r for r in rows}
            if not await self._fluxion_agrees(unit, [by_id[v.unit_id] for v in victims], graph):
                self.refused[unit.id] = seen
                continue
            await self._carry_out(unit, name, victims, causes, {v: q for v, (q, _) in gone.items()})
            return True
        return False

    @staticmethod
    def _borrowing(quotas: PassQuotas, queue: str, demand: dict) -> bool:
        """Whether ``queue`` holds more than its quota of a resource the waiting unit asks for."""
        spec = quotas.book.spec(queue)
        if spec is None:
            return True  # units of a queue since deleted hold nothing they were promised
        usage = quotas.usage.get(queue, {})
        return any(usage.get(r, 0) > spec.quota.get(r, 0) for r in RESOURCES if demand.get(r, 0) > 0)

    async def _fluxion_agrees(self, unit: Unit, victims: list[dict], graph: ClusterGraph) -> bool:
        """Fluxion places ``unit`` once the victims' jobs are gone. The what-if is undone by reloading Fluxion
        from the database before the next match (the victims still hold there until their pods are gone)."""
        load = self.graphs.load_id
        if load is None or any(v["epoch"] != load for v in victims):
            return False  # ids of another load mean nothing to this Fluxion
        try:
            spec = jobspec_for(scheduling_unit(unit), graph)
        except UnitError:
            return False
        self.graphs.loaded_fingerprint = None  # whatever happens below, Fluxion is reloaded before it is used
        fluxion = self.ctx.fluxion
        try:
            for v in victims:
                await fluxion.cancel(v["fluxion_jobid"])
            result = await fluxion.match(spec, reserve=False)
        except Exception as exc:
            log.warning("asking Fluxion about a preemption failed", unit=unit.key, error=repr(exc))
            return False
        placed = strategies.status_name(result) == strategies.ALLOCATED
        if placed:
            with contextlib.suppress(Exception):
                await fluxion.cancel(result.jobid)
        log.info("Fluxion on a preemption", unit=unit.key, victims=len(victims), placeable=placed)
        return placed

    async def _carry_out(
        self,
        unit: Unit,
        queue: str,
        victims: list[Holder],
        causes: dict[int, str],
        queue_of: dict[int, str],
    ) -> None:
        store = self.ctx.store
        row_of: dict[int, int] = {}
        told: dict[int, str] = {}
        for cause in (RECLAIM, PRIORITY):
            mine = [v.unit_id for v in victims if causes[v.unit_id] == cause]
            if not mine:
                continue
            why = (
                f"queue {queue} reclaims its quota"
                if cause == RECLAIM
                else f"higher priority in queue {queue}"
            )
            reason = f"preempted to make room for {unit.key} ({why})"
            ids = await store.record_preemptions(unit.id, mine, cause, reason)  # before any eviction
            row_of.update(zip(mine, ids, strict=True))
            told.update(dict.fromkeys(mine, reason))
        self.resumed = False  # until every eviction below is done and marked (else resume() finishes them)
        evicted = []
        for v in victims:
            victim = await store.get(v.unit_id)
            if await self._evict(victim, told[v.unit_id]):
                evicted.append(row_of[v.unit_id])
                if self.ctx.metrics is not None and victim is not None:
                    outcome = "requeued" if workload(victim.kind).requeueable else "deleted"
                    with contextlib.suppress(Exception):
                        self.ctx.metrics.preempted(queue_of.get(v.unit_id, ""), causes[v.unit_id], outcome)
        await store.mark_evicted(evicted)
        self.resumed = len(evicted) == len(victims)
        self.evictions += len(victims)
        names = ", ".join(v.key for v in victims)
        log.info("preempted", preemptor=unit.key, victims=names)
        with contextlib.suppress(Exception):
            await self.ctx.actions.event(
                [self.ctx.actions.fluxjob_ref(unit)], "Preempting", f"evicting {names} to make room for it"
            )

    async def _evict(self, victim: Unit | None, reason: str) -> bool:
        """Evict the victim (an Event says why): a workload that can be suspended is suspended and requeued,
        anything else ended and its pods deleted; its allocation is given back once its pods are gone
        (:class:`fluxqueue.controller.end.Ender`). Safe to repeat; False when it must be tried again."""
        if victim is None:
            return True
        if workload(victim.kind).requeueable:
            try:
                await self.end.preempt(victim, reason)
            except (APIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not preempt a workload; will retry", unit=victim.key, error=repr(exc))
                return False
            return True
        if victim.state in ACTIVE_STATES:
            await self.end.finish(victim, CANCELLED, reason, warning=True, event="Preempted")
        for pod in unit_pods(self.ctx, victim):
            if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                try:
                    await self.ctx.actions.delete_pod(pod)
                except Exception as exc:
                    log.warning("could not delete a preempted pod", unit=victim.key, error=repr(exc))
        return True


def _holder(row: dict, chunk: int) -> Holder:
    shares = {
        node: (int(cores), math.ceil(int(memory) / chunk), int(gpus))
        for node, cores, memory, gpus in row["shares"] or []
    }
    return Holder(row["id"], f"{row['namespace']}/{row['name']}", row["allocated_at"].timestamp(), shares)
