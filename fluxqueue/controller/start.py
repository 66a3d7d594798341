"""Starting a placed unit in Kubernetes: its workload unsuspended, every pod bound to a slot of its own pod
set on the node Fluxion chose, the bindings recorded; and noticing that it runs.

Order of effects (prior-art §9 items 9, 11, 15): the allocation is persisted first (by the pass); a unit found
``Scheduled`` but not ``started`` is started again from its stored allocation, never matched twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fluxqueue.controller.allocations import HeldAllocations
from fluxqueue.controller.context import Context
from fluxqueue.controller.fluxion_sync import GraphKeeper
from fluxqueue.controller.pods import unit_pods, unrecorded_bindings, wrapped_objects
from fluxqueue.controller.status import StatusWriter
from fluxqueue.controller.units import scheduling_unit
from fluxqueue.kube.client import APIError
from fluxqueue.log import get_logger
from fluxqueue.placement import constraints
from fluxqueue.placement.binding import assign_pod_sets, split_allocation
from fluxqueue.placement.jobspec import slot_plan
from fluxqueue.queue.store import HOLDING_STATES, RUNNING, SCHEDULED, Unit
from fluxqueue.workloads.base import pod_running
from fluxqueue.workloads.pod import PodWorkload
from fluxqueue.workloads.registry import workload

log = get_logger(__name__)

# Seconds a "Scheduled" status waits for "Running" to replace it: one write instead of two when a pod starts
# soon after its binding. Kubernetes' pod start-up SLO allows 5 s at p99 from creation to running, observed
# through a watch (kubernetes/community sig-scalability/slos/pod_startup_latency.md), and a kubelet reports
# Running about a second after the binding at best, so a 1 s wait (the Job controller's syncJobBatchPeriod)
# saved almost nothing; 3 s catches a typical start. The "Scheduled" Event, the pods' nodeName and the queue
# row show the placement at once.
SCHEDULED_STATUS_DELAY = 3.0


def _waited(unit: Unit) -> str:
    """ " after 2.5s in the queue" for an Event, when the unit waited at all."""
    if unit.scheduled_at is None or unit.submitted_at is None:
        return ""
    seconds = (unit.scheduled_at - unit.submitted_at).total_seconds()
    return f" after {seconds:.1f}s in the queue" if seconds >= 0.05 else ""


class Starter:
    def __init__(self, ctx: Context, allocations: HeldAllocations, status: StatusWriter, graphs: GraphKeeper):
        self.ctx = ctx
        self.allocations = allocations
        self.status = status
        self.graphs = graphs
        self.running: set[int] = set()  # units known Running (no database read per pod event)
        self.pending_binds: dict[str, str] = {}  # pod uid -> node, bound but not yet seen by the watch
        # Unit id -> uids of its pods whose binding this process has recorded. A pod bound by a process that
        # died before recording it is recorded by the next one, when it binds the unit's other pods or when
        # the unit ends (pod_bindings tells people where every pod ran).
        self.recorded_binds: dict[int, set[str]] = {}
        self._set_of_pod: dict[str, str] = {}  # pod uid -> the name of its pod set

    async def start(self, unit_id: int, unit: Unit | None = None) -> None:
        """Start a Scheduled unit in Kubernetes from its stored allocation: unsuspend its workload, bind its
        pods (safe to repeat).

        ``unit`` is the row the pass has just written (no need to read it back); without it, it is read.
        """
        ctx = self.ctx
        async with ctx.lock_for(unit_id):
            if unit is None:
                unit = await ctx.store.get(unit_id)
            if unit is None or unit.state not in HOLDING_STATES:
                return
            alloc = await self.allocations.get(unit_id)
            if alloc is None:
                return
            nodes = alloc.node_names
            kind = workload(unit.kind)
            try:
                informer = ctx.objects.get(unit.kind)
                if informer is not None:
                    obj = informer.get(unit.namespace, unit.object_name)
                    if obj is None:
                        return  # the sweep finishes units whose object is gone
                    if kind.suspended(obj):
                        await ctx.actions.start_workload(
                            kind, unit.namespace, unit.object_name, nodes, alloc.fluxion_jobid, unit.name
                        )
                await self._bind_unlocked(unit, alloc, mark_started=not unit.started)
            except APIError as exc:
                log.warning("starting failed; will retry", unit=unit.key, error=str(exc))
                return
            if not unit.started:
                wrapped = wrapped_objects(self.ctx, unit)
                if unit.kind == PodWorkload.kind:
                    # A bare pod hears it as from kube-scheduler, where `kubectl describe pod` looks (its
                    # FluxJob's status says the same; one Event per pod, not two).
                    message = f"Successfully assigned {unit.namespace}/{unit.object_name} to {nodes[0]}"
                    await ctx.actions.event(wrapped[:1], "Scheduled", message + _waited(unit))
                else:  # a Job or a group: its FluxJob and its first object
                    message = f"Scheduled on {','.join(nodes)}{_waited(unit)}"
                    await ctx.actions.event(
                        [ctx.actions.fluxjob_ref(unit), *wrapped[:1]], "Scheduled", message
                    )
                await self.status.publish(unit, defer=SCHEDULED_STATUS_DELAY)

    async def bind_unit_pods(self, unit_id: int) -> None:
        """Bind pods of a placed unit that have appeared since (a Job's pods after the unsuspend)."""
        ctx = self.ctx
        async with ctx.lock_for(unit_id):
            unit = await ctx.store.get(unit_id)
            if unit is None or unit.state not in HOLDING_STATES:
                return
            alloc = await self.allocations.get(unit_id)
            if alloc is None:
                return
            try:
                await self._bind_unlocked(unit, alloc)
            except APIError as exc:
                log.warning("binding failed; will retry", unit=unit.key, error=str(exc))

    async def _bind_unlocked(self, unit: Unit, alloc: Any, *, mark_started: bool = False) -> None:
        """Bind what is unbound of the unit's pods (all at once), record the bindings, and with
        ``mark_started`` mark the unit started in the same statement (only when every bind succeeded)."""
        ctx = self.ctx
        pods = []
        for pod in unit_pods(self.ctx, unit):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            uid = pod["metadata"].get("uid")
            node = self.pending_binds.get(uid)
            if node and not (pod.get("spec") or {}).get("nodeName"):
                pod = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}
            pods.append(pod)
        su = scheduling_unit(unit)
        slots = slot_plan(su, ctx.settings.memory_chunk)
        split = split_allocation(
            {n.node: n for n in alloc.nodes},
            [s.slot for s in slots],
            ctx.settings.memory_chunk,
            exclusive=unit.exclusive,
            allows=self._allows(su),
        )
        per_slot = {s.slot.name: s.per_slot for s in slots}
        room = {node: {name: n * per_slot[name] for name, n in sets.items()} for node, sets in split.items()}
        kind = workload(unit.kind)

        def set_of(pod: dict) -> str | None:
            # A pod's set never changes: found once (a shape comparison for pod groups), not at every bind.
            uid = pod["metadata"].get("uid") or ""
            name = self._set_of_pod.get(uid)
            if name is None:
                name = kind.pod_set_of(pod, su.pod_sets)
                if name is not None and uid:
                    if len(self._set_of_pod) >= 100_000:
                        self._set_of_pod.clear()
                    self._set_of_pod[uid] = name
            return name

        plan = assign_pod_sets(room, pods, set_of)
        by_name = {p["metadata"]["name"]: p for p in pods}
        todo = [(by_name[pod_name], node) for pod_name, node in plan.items()]
        unrecorded = unrecorded_bindings(
            alloc,
            [p for p in pods if p["metadata"]["name"] not in plan],
            self.recorded_binds.get(unit.id, set()),
        )
        outcomes = await asyncio.gather(
            *(
                ctx.actions.bind_pod(pod, node, jobid=alloc.fluxion_jobid, fluxjob=unit.name)
                for pod, node in todo
            ),
            return_exceptions=True,
        )
        bound = []
        for (pod, node), ok in zip(todo, outcomes, strict=True):
            if ok is True:
                uid = pod["metadata"].get("uid")
                self.pending_binds[uid] = node
                bound.append((pod["metadata"]["name"], uid, node))
                if ctx.metrics is not None:
                    with contextlib.suppress(Exception):
                        ctx.metrics.observe_bound(pod, node)
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        bound += unrecorded
        if bound or (mark_started and failed is None):
            await ctx.store.record_bindings(unit.id, bound, started=mark_started and failed is None)
            self.recorded_binds.setdefault(unit.id, set()).update(uid for _, uid, _ in bound)
        if failed is not None:
            raise failed

    def _allows(self, su: Any) -> Any:
        """Whether a pod set may use a node, for units whose sets differ in their node rules (else None)."""
        sets = su.pod_sets
        if all(s.same_rules(sets[0]) for s in sets[1:]):
            return None
        graph = self.graphs.capacity

        def allows(pod_set: Any, node: str) -> bool:
            n = graph.nodes.get(node) if graph is not None else None
            return n is None or constraints.node_allows(pod_set, node, n.labels, n.taints)

        return allows

    def forget_pod(self, uid: str) -> None:
        self.pending_binds.pop(uid, None)

    async def note_running(self, unit: Unit) -> None:
        if unit.state == RUNNING:
            self.running.add(unit.id)
        if unit.state != SCHEDULED:
            return
        if any(pod_running(p) for p in unit_pods(self.ctx, unit)):
            await self.mark_running(unit.id)

    async def mark_running(self, unit_id: int) -> None:
        """A pod of the unit runs: Scheduled -> Running (one conditional UPDATE, no read first)."""
        self.running.add(unit_id)
        running = await self.ctx.store.start_running(unit_id)
        if running is not None:
            await self.status.publish(running)
