"""Invariants every end-to-end test checks, whatever it is about.

* no node over-committed: at every instant, the requests of the non-terminal pods bound to a node fit its
  allocatable, and the simulated kubelets rejected nothing;
* every gang bound together: all pods of a placed unit were bound, onto the nodes of its one allocation;
* nothing lost: every unit the database knows has its FluxJob, and every managed object has a unit;
* nothing scheduled twice: one allocation per unit, one move to Scheduled per unit (one more for each time it
  was preempted and requeued, each such run backed by a recorded preemption decision), one binding per pod;
* no tenant queue above its limit: at every instant, what the units of a Queue holding an allocation ask stays
  within its ``spec.limit``.

``PodTimeline`` watches pods from the start of a test (in-process client of the emulator), so the
over-commit check sees every instant, not just the end state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import orjson

from fluxqueue.kube import names
from fluxqueue.placement.resources import pod_requests, resource_list
from fluxqueue.sim.apiserver import resources as R

TERMINAL = ("Succeeded", "Failed")


@dataclass
class PodTrace:
    namespace: str
    name: str
    uid: str
    node: str | None = None
    bound_at: float | None = None
    ended_at: float | None = None
    cpu_milli: int = 0
    memory: int = 0
    ours: bool = False
    bindings: int = 0
    labels: dict = field(default_factory=dict)
    owners: list = field(default_factory=list)


class PodTimeline:
    def __init__(self, api):
        self.api = api
        self.pods: dict[str, PodTrace] = {}
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> PodTimeline:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _observe(self, kind: str, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        now = time.monotonic()
        trace = self.pods.get(uid)
        if trace is None:
            req = pod_requests(pod)
            trace = self.pods[uid] = PodTrace(
                meta.get("namespace"),
                meta.get("name"),
                uid,
                cpu_milli=req.cpu_milli,
                memory=req.memory,
                ours=(pod.get("spec") or {}).get("schedulerName") == names.SCHEDULER_NAME,
                labels=dict(meta.get("labels") or {}),
                owners=list(meta.get("ownerReferences") or []),
            )
        node = (pod.get("spec") or {}).get("nodeName")
        if node and trace.node is None:
            trace.node = node
            trace.bound_at = now
            trace.bindings += 1
        elif node and node != trace.node:
            trace.bindings += 1  # moved: never allowed
        if trace.ended_at is None and (
            kind == "DELETED" or (pod.get("status") or {}).get("phase") in TERMINAL
        ):
            trace.ended_at = now

    async def _run(self) -> None:
        client = self.api.client
        listing = await client.list(R.PODS)
        for pod in listing["items"]:
            self._observe("ADDED", pod)
        rv = listing["metadata"]["resourceVersion"]
        self._ready.set()
        while True:
            try:
                async for ev in client.watch(R.PODS, resource_version=rv):
                    obj = ev.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._observe(ev["type"], obj)
            except asyncio.CancelledError:
                raise
            except Exception:
                listing = await client.list(R.PODS)
                for pod in listing["items"]:
                    self._observe("MODIFIED", pod)
                rv = listing["metadata"]["resourceVersion"]


def overcommits(timeline: PodTimeline, nodes: list[dict]) -> list[str]:
    """Instants when a node held more requests than its allocatable (empty when none)."""
    allocatable = {
        n["metadata"]["name"]: resource_list((n.get("status") or {}).get("allocatable") or {}) for n in nodes
    }
    events: dict[str, list[tuple[float, int, int, int, str]]] = defaultdict(list)
    for t in timeline.pods.values():
        if t.node is None or t.bound_at is None:
            continue
        end = t.ended_at if t.ended_at is not None else float("inf")
        # Ends sort before starts at the same instant: a slot freed and reused in one step is fine.
        events[t.node].append((t.bound_at, 1, t.cpu_milli, t.memory, t.name))
        events[t.node].append((end, 0, -t.cpu_milli, -t.memory, t.name))
    problems = []
    for node, evs in events.items():
        cap = allocatable.get(node)
        if cap is None:
            continue
        cpu = mem = 0
        for _when, _order, dcpu, dmem, name in sorted(evs):
            cpu += dcpu
            mem += dmem
            if cpu > cap.cpu_milli or mem > cap.memory:
                problems.append(f"{node} over-committed when {name} was bound: {cpu}m cpu, {mem} bytes")
    return problems


async def check_invariants(api, cluster, dsn: str, timeline: PodTimeline) -> None:
    """Assert every shared invariant; the message says exactly what broke."""
    assert cluster.rejections == [], f"kubelets rejected pods (over-commit): {cluster.rejections}"
    nodes = (await api.client.list(R.NODES))["items"]
    problems = overcommits(timeline, nodes)
    assert not problems, "\n".join(problems)
    moved = [f"{t.namespace}/{t.name}" for t in timeline.pods.values() if t.bindings > 1]
    assert not moved, f"pods bound more than once: {moved}"

    conn = await asyncpg.connect(dsn)
    try:
        twice = await conn.fetch(
            "SELECT c.unit_id, count(*) FROM fluxqueue.state_changes c WHERE c.to_state = 'Scheduled' "
            "GROUP BY c.unit_id HAVING count(*) > 1 + "
            "(SELECT count(*) FROM fluxqueue.past_allocations p WHERE p.unit_id = c.unit_id)"
        )
        assert not twice, f"units scheduled twice: {[tuple(r) for r in twice]}"
        # A run given up (requeued) only by a preemption decided while it held that allocation, and only
        # released once its pods were gone (checked with the node timeline by the over-commit check).
        unbacked = await conn.fetch(
            "SELECT p.unit_id, p.allocated_at FROM fluxqueue.past_allocations p WHERE NOT EXISTS ("
            "SELECT 1 FROM fluxqueue.preemptions d WHERE d.victim_id = p.unit_id "
            "AND d.decided_at BETWEEN p.allocated_at AND p.released_at AND d.evicted_at IS NOT NULL)"
        )
        assert not unbacked, f"runs given up with no preemption recorded: {[tuple(r) for r in unbacked]}"
        moves = await conn.fetch(
            "SELECT unit_id, count(*) FILTER (WHERE from_state = 'Preempted' AND to_state = 'Queued') AS requeued,"
            " (SELECT count(*) FROM fluxqueue.past_allocations p WHERE p.unit_id = c.unit_id) AS archived,"
            " (SELECT requeues FROM fluxqueue.units u WHERE u.id = c.unit_id) AS requeues "
            "FROM fluxqueue.state_changes c GROUP BY unit_id"
        )
        for m in moves:
            assert m["requeued"] == m["archived"] == m["requeues"], f"requeue bookkeeping differs: {dict(m)}"
        units = await conn.fetch(
            "SELECT id, namespace, name, kind, size, state, started FROM fluxqueue.units"
        )
        fluxjobs = {
            (f["metadata"]["namespace"], f["metadata"]["name"]): f
            for f in (await api.client.list(R.FLUXJOBS))["items"]
        }
        for u in units:
            if u["state"] in ("Waiting", "Queued", "Reserved", "Scheduled", "Running", "Preempted"):
                assert (u["namespace"], u["name"]) in fluxjobs, (
                    f"unit {u['namespace']}/{u['name']} has no FluxJob"
                )
        # Gangs bound together: every bound pod of a unit sits on a node of that unit's allocation, and a
        # unit that ran bound as many pods as it asked for.
        for u in units:
            if u["state"] not in ("Scheduled", "Running", "Succeeded", "Failed"):
                continue
            alloc_nodes = {
                r["node"]: r["slots"]
                for r in await conn.fetch(
                    "SELECT node, slots FROM fluxqueue.allocation_nodes WHERE unit_id = $1", u["id"]
                )
            }
            bound = await conn.fetch(
                "SELECT pod, node FROM fluxqueue.pod_bindings WHERE unit_id = $1", u["id"]
            )
            for b in bound:
                assert b["node"] in alloc_nodes, f"{u['name']}: pod {b['pod']} bound outside its allocation"
            # Each pod's own request fits what the unit holds on its node: pods of a unit of several pod sets
            # are bound to slots that fit them, never to a node whose share is smaller than what they ask.
            shares = {
                r["node"]: r
                for r in await conn.fetch(
                    "SELECT node, cores, memory_bytes, gpus FROM fluxqueue.allocation_nodes WHERE unit_id = $1",
                    u["id"],
                )
            }
            on_node: dict[str, list[PodTrace]] = defaultdict(list)
            for b in await conn.fetch(
                "SELECT pod_uid, node FROM fluxqueue.pod_bindings WHERE unit_id = $1", u["id"]
            ):
                trace = timeline.pods.get(b["pod_uid"])
                if trace is not None and trace.bound_at is not None:
                    on_node[b["node"]].append(trace)
            for node, traces in on_node.items():
                share = shares[node]
                for t in traces:  # at each bind: the unit's pods on that node then, this one included
                    live = [o for o in traces if o.bound_at <= t.bound_at < (o.ended_at or float("inf"))]
                    cpu, mem = sum(o.cpu_milli for o in live), sum(o.memory for o in live)
                    assert cpu <= share["cores"] * 1000 and mem <= share["memory_bytes"], (
                        f"{u['name']}: when {t.name} was bound, its unit's pods on {node} asked {cpu}m cpu, "
                        f"{mem} bytes; its share there is {share['cores']} cores, {share['memory_bytes']} bytes"
                    )
            if u["state"] in ("Running", "Succeeded") or (u["state"] == "Scheduled" and u["started"]):
                pods_bound = {b["pod"] for b in bound}
                assert len(pods_bound) >= u["size"] or u["state"] == "Scheduled", (
                    f"{u['name']}: only {len(pods_bound)} of {u['size']} pods bound"
                )
        for past in await conn.fetch("SELECT unit_id, nodes, bindings FROM fluxqueue.past_allocations"):
            held = {n["node"] for n in orjson.loads(past["nodes"])}
            for b in orjson.loads(past["bindings"]):
                assert b["node"] in held, (
                    f"unit {past['unit_id']}: pod {b['pod']} bound outside its allocation"
                )
        await _check_queue_limits(api, conn)
    finally:
        await conn.close()
    # Our pods that were bound carry a node of their unit's allocation (checked above) and nothing of ours
    # was bound by anyone else: a pod naming our scheduler is only ever bound by us.
    for t in timeline.pods.values():
        if t.ours and t.node is not None:
            assert t.bound_at is not None


async def _check_queue_limits(api, conn) -> None:
    """No Queue ever held more than its limit (allocation intervals, each unit's pod sets x counts)."""
    from fluxqueue.queues import QUEUES_API
    from fluxqueue.queues.share import RESOURCES, unit_demand
    from fluxqueue.queues.spec import QueueBook

    try:
        objects = (await api.client.list(QUEUES_API))["items"]
    except Exception:
        return  # the Queue CRD is not installed
    book = QueueBook.from_objects(objects)
    limited = {q.name: q for q in book.all() if q.limit}
    if not limited:
        return
    rows = await conn.fetch(
        "SELECT u.namespace, u.name, u.queue, u.pod_sets, a.allocated_at, a.released_at "
        "FROM fluxqueue.units u JOIN fluxqueue.allocations a ON a.unit_id = u.id "
        "UNION ALL SELECT u.namespace, u.name, u.queue, u.pod_sets, p.allocated_at, p.released_at "
        "FROM fluxqueue.units u JOIN fluxqueue.past_allocations p ON p.unit_id = u.id"
    )
    events: dict[str, list] = defaultdict(list)
    for r in rows:
        name = book.queue_of(r["namespace"], r["queue"])
        if name not in limited:
            continue
        demand = unit_demand(
            r["pod_sets"] if isinstance(r["pod_sets"], list) else orjson.loads(r["pod_sets"])
        )
        end = r["released_at"].timestamp() if r["released_at"] is not None else float("inf")
        events[name].append((r["allocated_at"].timestamp(), 1, demand, r["name"]))
        events[name].append((end, 0, {k: -v for k, v in demand.items()}, r["name"]))
    for name, evs in events.items():
        held = dict.fromkeys(RESOURCES, 0)
        for _at, _order, delta, unit in sorted(evs, key=lambda e: (e[0], e[1])):
            for k, v in delta.items():
                held[k] += v
            over = limited[name].over_limit(held)
            assert not over, f"queue {name} above its limit ({over}) when {unit} was placed: {held}"
