"""The scheduling loop (leader only): keep Fluxion's graph current, walk the queue, place, release, finish.

Order of effects for a placement, so a crash anywhere is recoverable (prior-art §9 items 9, 11, 15):
match in Fluxion -> allocation + state ``Scheduled`` in one transaction -> Kubernetes (unsuspend / ungate /
bind) -> ``released`` flag. A unit found ``Scheduled`` but not released is released again from its stored
allocation; it is never matched twice.

Fluxion's state is rebuilt from the database whenever it may differ: at start, when the graph changes (nodes,
foreign load), and when the service restarted (its epoch moved or it reports itself uninitialised). Held
allocations are replayed with the admin UpdateAllocate RPC before any new match.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fluxqueue.controller import strategy as strategies
from fluxqueue.controller.context import Context
from fluxqueue.controller.fluxjob import fluxjob_status, rfc3339
from fluxqueue.controller.replay import GraphIndex, ReplayError, replay_r
from fluxqueue.controller.units import scheduling_unit
from fluxqueue.fluxion.allocation import nodes_from_allocation
from fluxqueue.fluxion.client import FluxionError
from fluxqueue.kube import names
from fluxqueue.kube.client import APIError, TokenBucket
from fluxqueue.log import get_logger
from fluxqueue.placement import constraints
from fluxqueue.placement.binding import assign_pod_sets, split_allocation
from fluxqueue.placement.graph import ClusterGraph, build_cluster_graph
from fluxqueue.placement.jobspec import jobspec_for, slot_plan
from fluxqueue.placement.units import UnitError
from fluxqueue.queue.store import (
    FAILED,
    HOLDING_STATES,
    QUEUED,
    RESERVED,
    RUNNING,
    SCHEDULED,
    UNSATISFIABLE,
    WAITING,
    Allocation,
    NodeShare,
    Released,
    Unit,
)
from fluxqueue.workloads.base import pod_running
from fluxqueue.workloads.pod import PodWorkload
from fluxqueue.workloads.registry import unit_of_pod, workload

log = get_logger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")
POSITION_REFRESH_SECONDS = 5.0
PENDING_READ_FACTOR = 4  # units read per pass, in multiples of the queue depth
PERSIST_CONCURRENCY = 64  # allocations being written (the store batches them) while the pass matches on
QUEUE_COUNT_SECONDS = 2.0  # how often the queue-length gauge is recounted (metrics are scraped every ~15 s)
STATE_CHECK_SECONDS = 1.0  # how often the pass asks Fluxion whether it restarted
MATCH_BATCH = 32  # units matched per Fluxion round trip (FluxionAdmin.MatchBatch)
RELOAD_SHARE_INVERSE = 20  # a time resync waits at least 20x the last reload's duration
REPLAY_CONCURRENCY = 32  # held allocations given back to Fluxion at once after a reload
LOAD_ATTEMPTS = 3  # a load whose replays did not all fit starts over (with their pods as foreign load)
# Further back in the queue, a position is refreshed less often (0.1 s per place: the 2,000th every 200 s), so a
# deep queue costs tens of status writes per second, not one per unit every few seconds (which, at 2,000 units,
# used the whole API rate limit and starved the bindings).
POSITION_REFRESH_PER_PLACE = 0.1
OPTIONAL_STATUS_KEYS = ("queuePosition", "reservedStart", "members", "nodes", "nodeList", "fluxionJobID")


def is_ours(pod: dict) -> bool:
    return (pod.get("spec") or {}).get("schedulerName") == names.SCHEDULER_NAME


def holder_key(pod: dict) -> str:
    """The queue's owner key of the unit a pod of ours belongs to (the workload's uid, the pod's, or a group
    key), through its owner chain (:func:`fluxqueue.workloads.registry.unit_of_pod`)."""
    try:
        ref = unit_of_pod(pod)
    except UnitError:
        ref = None
    return ref.owner_key if ref is not None else ((pod.get("metadata") or {}).get("uid") or "")


UNIT_INDEX = "unit"  # the pods informer's index: our pods by holder_key


def unit_index(pod: dict) -> list[str]:
    return [holder_key(pod)] if is_ours(pod) else []


def _live(pods: list[dict]) -> list[dict]:
    """The pods still bound to a node and not finished."""
    return [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName")
        and (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
    ]


def _uids(pods: list[dict]) -> frozenset[str]:
    return frozenset((p.get("metadata") or {}).get("uid") or "" for p in pods)


def foreign_pods(pods: list[dict], holding: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """Bound, unfinished pods whose resources no allocation of ours accounts for: taken out of the graph.

    That is every pod we do not place, and ours whose unit no longer holds an allocation (a Job that failed
    while its pods still terminate, a group member outliving its group).
    """
    out = []
    for pod in pods:
        spec = pod.get("spec") or {}
        if not spec.get("nodeName"):
            continue
        if is_ours(pod) and holder_key(pod) in holding:
            continue
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        out.append(pod)
    return out


class GraphKeeper:
    """The cluster graph and the Fluxion service's copy of it."""

    def __init__(self, ctx: Context, allocations: dict[int, Allocation] | None = None):
        self.ctx = ctx
        # The scheduler's cache of held allocations: a replay may give one a new Fluxion id.
        self.allocations = allocations if allocations is not None else {}
        self.graph: ClusterGraph | None = None
        # The same nodes with no foreign load: what "could this ever fit?" is judged against, so a passing
        # foreign pod never makes a unit Unsatisfiable for good.
        self.capacity: ClusterGraph | None = None
        self.capacity_fingerprint: str | None = None
        self.capacity_changed = False
        self.fingerprint: str | None = None
        self.loaded_fingerprint: str | None = None
        self.epoch: int | None = None  # Fluxion's own count of Inits, to notice a restart or another Init
        # This load of Fluxion (Init + replay), recorded with each allocation (allocations.epoch): a Fluxion
        # job id means something only in the load that issued or replayed it, since an Init forgets every job
        # and issues ids from 1 again. Unique across restarts of either process (microseconds).
        self.load_id: int | None = None
        self.origin = time.time()  # Fluxion's time zero (reservation starts are offsets from it)
        self.inits = 0
        self.checked_at = 0.0  # when Fluxion's epoch was last checked
        self.reload_pause = 0.0  # seconds before a time resync may reload again (20x the last reload)
        self.index: tuple[ClusterGraph, GraphIndex] | None = None
        self.replayed = 0
        self.replay_failures = 0
        self.last_load_id: int | None = None
        self.built_foreign: frozenset[str] = frozenset()  # uids of the pods the graph counts as foreign load
        # (Fluxion, database) allocation counts when they last differed; when the last allocation was given back.
        self.differed: tuple[int, int] | None = None
        self.released_at = 0.0

    def rebuild(self) -> ClusterGraph:
        ctx = self.ctx
        foreign = foreign_pods(ctx.pods.items(), ctx.holding)
        self.built_foreign = _uids(foreign)
        capacity = build_cluster_graph(ctx.nodes.items(), (), memory_chunk_bytes=ctx.settings.memory_chunk)
        shape = capacity.fingerprint
        if self.capacity_fingerprint is not None and shape != self.capacity_fingerprint:
            self.capacity_changed = True  # nodes came, went or changed: re-judge what was unsatisfiable
        if shape != self.capacity_fingerprint or self.capacity is None:
            # Same shape: keep the same object, so verdicts cached against it (FluxionMatcher) stay valid.
            self.capacity, self.capacity_fingerprint = capacity, shape
        # With no foreign load the graph is the capacity graph: built once (at 5,000 nodes of 32 cores and
        # 128 memory chunks, each build is 800,000 vertices and seconds of CPU).
        self.graph = (
            build_cluster_graph(ctx.nodes.items(), foreign, memory_chunk_bytes=ctx.settings.memory_chunk)
            if foreign
            else self.capacity
        )
        self.fingerprint = self.graph.fingerprint
        log.debug(
            "graph rebuilt",
            foreign_pods=len(foreign),
            nodes=len(self.graph.nodes),
            fingerprint=self.fingerprint[:12],
        )
        ctx.graph_dirty = False
        return self.graph

    async def _fluxion_lost_state(self) -> bool:
        fluxion = self.ctx.fluxion
        if not getattr(fluxion, "has_admin", False):
            return False
        # Asked at most once a second, not on every pass (Stats walks Fluxion's jobs and nodes). A service
        # that restarted meanwhile is uninitialised and refuses matches, so nothing is placed on a lost state.
        now = time.monotonic()
        if now - self.checked_at < STATE_CHECK_SECONDS:
            return False
        self.checked_at = now
        try:
            stats = await fluxion.stats()
        except Exception as exc:
            log.warning("Fluxion stats failed", error=repr(exc))
            return True
        epoch = stats.get("epoch")
        if not stats.get("initialized", True) or (epoch is not None and epoch != self.epoch):
            log.warning(
                "Fluxion lost its state (restarted or re-initialised elsewhere)", epoch=epoch, ours=self.epoch
            )
            return True
        return await self._fluxion_differs(int(stats.get("jobs_allocated", 0)))

    async def _fluxion_differs(self, fluxion_holds: int) -> bool:
        """Whether Fluxion has held a different number of allocations than the database says for two checks
        in a row (a second apart, between passes): a write whose outcome was lost with its connection, or a
        cancel that never arrived. One check is not enough: a release may be between its commit and its cancel."""
        if self.load_id is None or time.monotonic() - self.released_at < 2 * STATE_CHECK_SECONDS:
            # Releases going on: the counts differ by the cancels in flight. Compared once it is quiet (a busy
            # queue reloads on every time resync anyway).
            self.differed = None
            return False
        held = await self.ctx.store.count_held_in_load(self.load_id)
        differs = (fluxion_holds, held) if fluxion_holds != held else None
        previous, self.differed = self.differed, differs
        if differs is not None and previous is not None:
            log.warning("Fluxion and the database disagree; reloading", fluxion=fluxion_holds, database=held)
            return True
        return False

    async def ensure(self, resync: bool = False) -> ClusterGraph:
        """Graph current and loaded in Fluxion with every held allocation; returns the graph."""
        if self.graph is None or self.ctx.graph_dirty:
            self.rebuild()
        assert self.graph is not None
        need = (
            self.epoch is None
            or self.fingerprint != self.loaded_fingerprint
            or await self._fluxion_lost_state()
        )
        if (
            not need
            and resync
            and time.time() - self.origin >= max(self.ctx.settings.time_resync, self.reload_pause)
        ):
            # Fluxion has no clock: "now" stays at its last Init, so running units look freshly started and
            # reservations drift late. Reloading with each unit's remaining time brings "now" forward. With
            # thousands of allocations to replay a reload takes seconds: at most 5% of the time goes to it.
            need = True
        if need:
            await self.load()
        return self.graph

    async def load(self) -> None:
        """Init Fluxion with the graph and replay every held allocation into it, as the database has them.

        Loaded only once every held allocation is back: a load cut short (the database or Fluxion failing
        half way) leaves Fluxion without some of them, and matching against it would place work on resources
        in use; the next pass loads again from the start. A held allocation that no longer fits is forgotten
        (its pods become foreign load) and the load starts over with a graph that counts them.
        """
        started = time.monotonic()
        self.loaded_fingerprint = None
        self.load_id = None  # no cancel reaches Fluxion until the held allocations are back under the new id
        for _attempt in range(LOAD_ATTEMPTS):
            held, forgotten = await self._load_once()
            if not forgotten:
                break
        else:
            raise RuntimeError(
                f"Fluxion load: held allocations still do not fit after {LOAD_ATTEMPTS} attempts"
            )
        self.reload_pause = RELOAD_SHARE_INVERSE * (time.monotonic() - started)
        log.info(
            "Fluxion graph loaded",
            nodes=len(self.graph.nodes) if self.graph else 0,
            excluded=len(self.graph.excluded) if self.graph else 0,
            epoch=self.epoch,
            replayed=held,
        )

    async def _load_once(self) -> tuple[int, int]:
        """One Init + replay; returns (allocations replayed, allocations forgotten because they did not fit)."""
        ctx = self.ctx
        # Which units hold an allocation is read first, from the database: their pods are in Fluxion through
        # the replay, every other bound pod is foreign load taken out of the graph. (The in-memory set can be
        # wrong after a write whose outcome was lost with its connection.)
        held = [a for a in await ctx.store.held_allocations() if a.fluxion_jobid > 0]
        owners = {a.owner_uid for a in held}
        if owners != ctx.holding:
            ctx.holding.clear()
            ctx.holding.update(owners)
        # A graph built while a holder was missing from the set counted its pods as foreign load: replaying
        # its allocation on top would not fit (or hide capacity). Rebuilt when these holders change which pods
        # are foreign (only then: a build at thousands of nodes costs seconds).
        if (
            self.graph is None
            or ctx.graph_dirty
            or _uids(foreign_pods(ctx.pods.items(), owners)) != self.built_foreign
        ):
            self.rebuild()
        graph = self.graph
        assert graph is not None
        await ctx.fluxion.init(graph.jgf_text, policy=ctx.settings.policy)
        self.origin = time.time()
        self.inits += 1
        epoch = self.inits
        if getattr(ctx.fluxion, "has_admin", False):
            with contextlib.suppress(Exception):
                epoch = (await ctx.fluxion.stats()).get("epoch", epoch)
        self.epoch = epoch
        load_id = max(time.time_ns() // 1000, (self.last_load_id or 0) + 1)
        self.last_load_id = load_id
        forgotten = 0
        if held:
            if self.index is None or self.index[0] is not graph:
                self.index = (graph, GraphIndex.of(graph.jgf))  # parsed once per graph, not per reload
            # The vertices this load's replays take, from none: the cursors of an earlier load of the same
            # graph would make every node look full (its allocations are forgotten when it is not).
            index = replace(self.index[1], taken=defaultdict(int))
            exclusive = await ctx.store.exclusive_units([a.unit_id for a in held])
            # Replays of distinct allocations do not depend on each other: many in flight at once, so
            # reloading thousands of running units takes round trips in parallel, not one after another.
            slots = asyncio.Semaphore(REPLAY_CONCURRENCY)

            async def replay(alloc: Allocation) -> bool:
                async with slots:
                    return await self._replay(alloc, index, alloc.unit_id in exclusive)

            outcomes = await asyncio.gather(*(replay(a) for a in held))
            for ok in outcomes:
                if ok:
                    self.replayed += 1
                else:
                    self.replay_failures += 1
                    forgotten += 1
            # The allocations Fluxion holds again, under their ids, now belong to this load (one statement).
            replayed = [a for a, ok in zip(held, outcomes, strict=True) if ok]
            moved = await ctx.store.set_allocation_epoch([a.unit_id for a in replayed], load_id)
            for alloc in replayed:
                if alloc.unit_id not in moved:
                    # Released while being replayed: its cancel was not for this load, so it is done here.
                    with contextlib.suppress(Exception):
                        await ctx.fluxion.cancel(alloc.fluxion_jobid)
        if not forgotten:
            self.load_id = load_id
            self.loaded_fingerprint = self.fingerprint
            self.differed = None
        return len(held) - forgotten, forgotten

    async def _replay(self, alloc: Any, index: GraphIndex, exclusive: bool) -> bool:
        """Give Fluxion back a held allocation, for the time it has left (Fluxion's "now" is its last Init)."""
        fluxion = self.ctx.fluxion
        if not getattr(fluxion, "has_admin", False):
            log.error("Fluxion has no replay RPC; held allocation not restored", unit=alloc.unit_id)
            return False
        try:
            r = replay_r(
                index, alloc.nodes, exclusive=exclusive, memory_chunk_bytes=self.ctx.settings.memory_chunk
            )
        except ReplayError as exc:
            log.error("held allocation no longer fits the graph", unit=alloc.unit_id, why=str(exc))
            await self._forget_in_fluxion(alloc)
            return False
        # Durations are in the workload's seconds; under a simulation clock they pass time_scale times faster.
        elapsed = (datetime.now(UTC) - alloc.allocated_at).total_seconds() * self.ctx.settings.time_scale
        # An overrunning unit is given one more second at a time: we cannot know when it will end.
        remaining = max(1, int(alloc.duration_s - elapsed)) if alloc.duration_s else 0
        try:
            await fluxion.replay(alloc.fluxion_jobid, json.dumps(r), duration=remaining)
        except Exception as exc:
            log.error("replay failed", unit=alloc.unit_id, jobid=alloc.fluxion_jobid, error=repr(exc))
            await self._forget_in_fluxion(alloc)
            return False
        return True

    async def _forget_in_fluxion(self, alloc: Any) -> None:
        """Fluxion does not hold this allocation any more: its id may be issued again, so never cancel it
        (id 0), and its pods count as foreign load until they are gone."""
        await self.ctx.store.update_allocation_id(alloc.unit_id, 0, 0)
        self.allocations.pop(alloc.unit_id, None)
        unit = await self.ctx.store.get(alloc.unit_id)
        if unit is not None:
            self.ctx.holding.discard(unit.owner_uid)
            self.ctx.graph_dirty = True

    def start_time(self, at: int | float) -> datetime:
        return datetime.fromtimestamp(self.origin + float(at or 0) / self.ctx.settings.time_scale, UTC)


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
        return MATCH_BATCH if self.ctx.match_batching and getattr(self.ctx.fluxion, "has_admin", False) else 1

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
        started = time.perf_counter()
        try:
            results = await self.ctx.fluxion.match_batch(
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


def _unrecorded_bindings(alloc: Any, pods: list[dict], recorded: set[str]) -> list[tuple[str, str, str]]:
    """(pod, uid, node) of the pods bound to a node of the allocation whose binding is not in ``recorded``."""
    nodes = {n.node for n in alloc.nodes}
    out = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        uid = pod["metadata"].get("uid") or ""
        if node in nodes and uid not in recorded:
            out.append((pod["metadata"]["name"], uid, node))
    return out


def _waited(unit: Unit) -> str:
    """ " after 2.5s in the queue" for an Event, when the unit waited at all."""
    if unit.scheduled_at is None or unit.submitted_at is None:
        return ""
    seconds = (unit.scheduled_at - unit.submitted_at).total_seconds()
    return f" after {seconds:.1f}s in the queue" if seconds >= 0.05 else ""


# Seconds a "Scheduled" status waits for "Running" to replace it: one write instead of two when a pod starts
# soon after its binding. Kubernetes' pod start-up SLO allows 5 s at p99 from creation to running, observed
# through a watch (kubernetes/community sig-scalability/slos/pod_startup_latency.md), and a kubelet reports
# Running about a second after the binding at best, so a 1 s wait (the Job controller's syncJobBatchPeriod)
# saved almost nothing; 3 s catches a typical start. The "Scheduled" Event, the pods' nodeName and the queue
# row show the placement at once.
SCHEDULED_STATUS_DELAY = 3.0


class _Busy:
    status = "BUSY"

    def __init__(self, message: str):
        self.message = message


class _Unsatisfiable:
    status = "UNSATISFIABLE"

    def __init__(self, message: str):
        self.message = message


class Scheduler:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        # Held allocations by unit id (node shares never change once written; a replay drops the entry):
        # releasing, binding and publishing a unit read them from here, not from the database each time.
        self.allocations: dict[int, Allocation] = {}
        self.graphs = GraphKeeper(ctx, self.allocations)
        self.passes = 0
        self.to_cancel: dict[int, int] = {}  # Fluxion id -> its load, whose cancel failed; retried every pass
        self.published: dict[int, dict] = {}  # unit id -> last status written
        self.published_at: dict[int, float] = {}
        # Units whose status write found no FluxJob (placed while it was being created): written again once
        # it exists (Reactor._submit_unlocked).
        self.status_missed: set[int] = set()
        self.fluxjob_created: set[int] = set()  # units whose FluxJob the reactor has seen created
        self.reasons: dict[int, str] = {}  # unit id -> reason last written for a waiting unit
        self.draining: dict[int, Unit] = {}  # ended units whose pods are still on their nodes
        self.running: set[int] = set()  # units known Running (no database read per pod event)
        self.pending_binds: dict[str, str] = {}  # pod uid -> node, bound but not yet seen by the watch
        # Unit id -> uids of its pods whose binding this process has recorded. A pod bound by a process that
        # died before recording it is recorded by the next one, when it binds the unit's other pods or when
        # the unit ends (pod_bindings tells people where every pod ran).
        self.recorded_binds: dict[int, set[str]] = {}
        self._release_tasks: set[asyncio.Task] = set()
        self.fits_cache: dict[Any, tuple[ClusterGraph, tuple[bool, str]]] = {}
        self.reserved_left: bool | None = None  # whether the last pass left Reserved units (None: unknown)
        self.counted_at = 0.0
        self.status_budget = TokenBucket(ctx.settings.waiting_status_rate, ctx.settings.waiting_status_burst)
        self._deferred: dict[int, asyncio.Task] = {}  # unit id -> a status write waiting to be superseded
        self._waiting_writes: dict[int, asyncio.Task] = {}  # unit id -> its waiting status being written
        self._status_locks: dict[int, asyncio.Lock] = {}

    # ---- the loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.wake_event.wait(), ctx.settings.pass_interval)
            ctx.wake_event.clear()
            await asyncio.sleep(0.01)  # let a burst of submissions land in one pass
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling pass failed")
                await asyncio.sleep(0.5)

    async def run_pass(self) -> int:
        """One pass over the queue; returns how many units were placed."""
        ctx = self.ctx
        async with ctx.store.pass_lock() as mine:
            if not mine:
                return 0
            started = time.monotonic()
            if ctx.graph_dirty:
                self.graphs.rebuild()
            if self.graphs.capacity_changed:
                again = await ctx.store.requeue_unsatisfiable("the cluster changed; trying again")
                self.graphs.capacity_changed = False  # only once done: a failed requeue is tried next pass
                if again:
                    log.info("cluster changed: unsatisfiable units queued again", units=len(again))
            # A pass matches at most queue-depth units: reading (and decoding) the whole queue each pass made
            # a deep queue cost O(queue) per pass. Units further back keep their last status until they
            # come within reach.
            depth = ctx.settings.queue_depth
            units = await ctx.store.pending(limit=depth * PENDING_READ_FACTOR if depth else None)
            graph = await self.graphs.ensure(resync=bool(units) and ctx.settings.strategy != "fcfs")
            await self._retry_cancels()
            if len(self.fits_cache) > 4096:
                self.fits_cache.clear()  # shapes of units long gone
            matcher = FluxionMatcher(ctx, graph, self.graphs.capacity, self.fits_cache)
            reservations: list[int] = []
            keep: list[int] = []
            # Written together after the plan: one statement, not a round trip per waiting unit inside it.
            waiting_reasons: list[tuple[int, str, bool]] = []
            placed: list[Unit] = []
            persisting: set[asyncio.Task] = set()
            position = 0
            try:
                async for decision in strategies.plan(
                    ctx.settings.strategy, units, matcher, ctx.settings.queue_depth
                ):
                    unit = decision.unit
                    if isinstance(decision, strategies.Allocate):
                        # Persisting overlaps the next matches (Fluxion already holds this allocation); the
                        # Kubernetes side starts only once it is persisted, and the pass ends only after
                        # every persist has (before reservations are cancelled and the lock is released).
                        while len(persisting) >= PERSIST_CONCURRENCY:
                            _, pending_tasks = await asyncio.wait(
                                persisting, return_when=asyncio.FIRST_COMPLETED
                            )
                            persisting = set(pending_tasks)
                        persisting.add(
                            asyncio.create_task(self._persist_then_release(unit, decision.result, placed))
                        )
                    elif isinstance(decision, strategies.Reserve):
                        position += 1
                        result = decision.result
                        reservations.append(result.jobid)
                        keep.append(unit.id)
                        start = self.graphs.start_time(result.at)
                        nodes = ",".join(sorted((result.nodes or {}).keys()))
                        reason = f"reserved to start at {start:%H:%M:%S} UTC on {nodes}"
                        await ctx.store.record_reservation(unit.id, result.jobid, start, reason)
                        self.reasons[unit.id] = reason
                        fresh = replace(unit, state=RESERVED, reason=reason)
                        await self.publish(fresh, position=position, reserved_start=start, throttle=True)
                    elif isinstance(decision, strategies.Wait):
                        position += 1
                        if self.reasons.get(unit.id) != decision.reason or unit.reason != decision.reason:
                            waiting_reasons.append((unit.id, decision.reason, decision.matched))
                            self.reasons[unit.id] = decision.reason
                        # A Reserved unit without a reservation this pass is turned back to Queued at the end.
                        fresh = replace(unit, state=QUEUED, reason=decision.reason)
                        await self.publish(fresh, position=position, throttle=True)
                    elif isinstance(decision, strategies.Reject):
                        await self.finish(
                            unit, UNSATISFIABLE, f"Unsatisfiable: {decision.reason}", warning=True
                        )
                await ctx.store.set_waiting_reasons(waiting_reasons)
            except BaseException:
                # Cut short: Fluxion may hold matches that were never persisted (a batch of matches is made
                # at once and handed out one by one). Reload it from the database before the next match.
                self.graphs.loaded_fingerprint = None
                raise
            finally:
                if persisting:
                    outcomes = await asyncio.gather(*persisting, return_exceptions=True)
                    if any(isinstance(o, BaseException) for o in outcomes):
                        # Fluxion may hold allocations the database does not (or the reverse): reload
                        # Fluxion from the database before the next match.
                        self.graphs.loaded_fingerprint = None
                        for o in outcomes:
                            if isinstance(o, Exception):
                                log.error("persisting an allocation failed", error=repr(o))
                # Reservations exist only inside a pass (never released as if allocated), even when the
                # pass fails half way.
                for jobid in reservations:
                    await self._cancel(jobid)
                # Only when this pass or the last left Reserved units or reservation rows (unknown after a
                # start): with none, the two statements scanned every queued unit on every pass for nothing.
                if reservations or keep or self.reserved_left is not False:
                    await ctx.store.clear_reservations(keep_reserved=keep)
                    self.reserved_left = bool(keep)
            self.passes += 1
            if ctx.metrics is not None and time.monotonic() - self.counted_at >= QUEUE_COUNT_SECONDS:
                self.counted_at = time.monotonic()  # the queue-length gauge (a scan of the active units)
                with contextlib.suppress(Exception):
                    ctx.metrics.set_queue_lengths(await ctx.store.state_counts())
            elapsed = time.monotonic() - started
            if ctx.metrics is not None:
                with contextlib.suppress(Exception):
                    ctx.metrics.observe_pass(elapsed, len(units), len(placed))
            if placed and depth and matcher.calls >= depth:
                ctx.wake("more units than one pass considers")  # next pass now, not at the next event
            if placed or reservations:
                log.info(
                    "pass",
                    pending=len(units),
                    placed=len(placed),
                    reserved=len(reservations),
                    matches=matcher.calls,
                    seconds=round(elapsed, 3),
                )
        return len(placed)

    async def _persist_then_release(self, unit: Unit, result: Any, placed: list[Unit]) -> None:
        done = await self._persist_allocation(unit, result)
        if done is not None:
            placed.append(done)
            # Persisted: the Kubernetes side may start now, while the pass goes on.
            self._spawn_release(done)

    def _spawn_release(self, unit: Unit) -> None:
        task = asyncio.create_task(self.release(unit.id, unit))
        self._release_tasks.add(task)
        task.add_done_callback(self._release_tasks.discard)

    async def drain(self) -> None:
        """Stop in-flight releases (each is recorded before it starts and is redone by the next leader) and
        drop status writes still waiting to be batched (a replica that no longer leads writes nothing; the
        unit's next change, such as its pods running, is written by the leader)."""
        tasks = [*self._release_tasks, *self._deferred.values(), *self._waiting_writes.values()]
        self._deferred.clear()
        self._waiting_writes.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _persist_allocation(self, unit: Unit, result: Any) -> Unit | None:
        ctx = self.ctx
        nodes = result.nodes or nodes_from_allocation(result.allocation)
        shares = [
            NodeShare(name, int(a.cores), int(a.memory), int(a.gpus), int(a.slots))
            for name, a in sorted(nodes.items())
        ]
        reason = f"Scheduled on {','.join(s.node for s in shares)}"
        done = await ctx.store.schedule(
            unit.id,
            jobid=result.jobid,
            epoch=self.graphs.load_id or 0,
            r=result.allocation,
            nodes=shares,
            reason=reason,
        )
        if done is None:
            # Deleted (or placed by another pass) while we matched: give the resources back.
            await self._cancel(result.jobid)
            return None
        ctx.holding.add(done.owner_uid)
        self.allocations[done.id] = Allocation(
            unit_id=done.id,
            fluxion_jobid=result.jobid,
            epoch=self.graphs.load_id or 0,
            r=result.allocation,
            allocated_at=done.scheduled_at or datetime.now(UTC),
            released_at=None,
            nodes=shares,
            duration_s=done.duration_s,
        )
        if ctx.metrics is not None:
            with contextlib.suppress(Exception):
                ctx.metrics.observe_scheduled(done)
        return done

    async def allocation(self, unit_id: int) -> Allocation | None:
        """The unit's allocation, from the cache when this process wrote or read it before."""
        alloc = self.allocations.get(unit_id)
        if alloc is None:
            alloc = await self.ctx.store.allocation(unit_id)
            if alloc is not None and alloc.released_at is None:
                self.allocations[unit_id] = alloc
        return alloc

    # ---- Fluxion cancel -----------------------------------------------------------------------------

    async def _cancel(self, jobid: int | None, load_id: int | None = None) -> None:
        """Cancel a Fluxion job of load ``load_id`` (default: the current load). An id of another load is left
        alone: that load's Init forgot the job, and the id may name another unit's allocation now."""
        if jobid is None or jobid <= 0:
            return
        current = self.graphs.load_id
        if current is None or (load_id is not None and load_id != current):
            self.to_cancel.pop(jobid, None)
            return
        try:
            await self.ctx.fluxion.cancel(jobid)
            self.to_cancel.pop(jobid, None)
        except Exception as exc:
            log.warning("Fluxion cancel failed; will retry", jobid=jobid, error=repr(exc))
            self.to_cancel[jobid] = current

    async def _retry_cancels(self) -> None:
        for jobid, load_id in list(self.to_cancel.items()):
            await self._cancel(jobid, load_id)

    # ---- ending a unit ------------------------------------------------------------------------------

    async def finish(self, unit: Unit, state: str, reason: str, *, warning: bool = False) -> Unit | None:
        """Terminal state in the database, then the allocation goes back to Fluxion, publish, wake.

        The allocation is only given back once no pod of the unit is left on a node (a failed or deleted
        Job's pods take their grace period to stop): until then Fluxion keeps holding it ("draining"), so
        nothing new is placed onto resources still in use.
        """
        ctx = self.ctx
        pods = self.unit_pods(unit)
        live = _live(pods)
        recorded = self.recorded_binds.pop(unit.id, set())
        if any(
            (p.get("spec") or {}).get("nodeName") and p["metadata"].get("uid") not in recorded for p in pods
        ):
            # Bound by a process that stopped before recording it (normally every binding is recorded here).
            with contextlib.suppress(Exception):  # a record for people; the unit ends all the same
                alloc = await self.allocation(unit.id)
                unrecorded = _unrecorded_bindings(alloc, pods, recorded) if alloc else []
                if unrecorded:
                    await ctx.store.record_bindings(unit.id, unrecorded)
        async with self._fluxion_follows_database():
            done, released = await ctx.store.finish(unit.id, state, reason, release=not live)
        if done is None:
            return None
        if live:
            self.draining[done.id] = done
        else:
            await self._give_back(done, released)
        log.info("unit finished", unit=done.key, state=state, reason=reason)
        await self.publish(done)
        wrapped = self.wrapped_objects(done)
        event_reason = state if state != UNSATISFIABLE else "Unsatisfiable"
        await ctx.actions.event(
            [ctx.actions.fluxjob_ref(done), *wrapped[:1]],
            event_reason,
            reason,
            "Warning" if warning else "Normal",
        )
        if ctx.metrics is not None:
            with contextlib.suppress(Exception):
                ctx.metrics.observe_finished(done)
        ctx.wake("finished")
        self.forget_status(done.id)
        self.fluxjob_created.discard(done.id)
        ctx.actions.forget_fluxjob(done)
        self.running.discard(done.id)
        return done

    def forget_status(self, unit_id: int) -> None:
        """Drop what is remembered of an ended unit's status (its last status is written)."""
        self.published.pop(unit_id, None)
        self.published_at.pop(unit_id, None)
        self.reasons.pop(unit_id, None)
        self._status_locks.pop(unit_id, None)

    def live_pods(self, unit: Unit) -> list[dict]:
        """Pods of the unit still bound to a node and not finished."""
        return _live(self.unit_pods(unit))

    @contextlib.asynccontextmanager
    async def _fluxion_follows_database(self) -> AsyncIterator[None]:
        """Around a write that releases an allocation: when it fails, whether it took effect is unknown (a
        connection lost after the commit), so Fluxion is reloaded from the database before the next match
        rather than left holding (or not) what the database no longer does."""
        try:
            yield
        except Exception:
            self.graphs.loaded_fingerprint = None
            self.ctx.wake("allocation write failed")
            raise

    async def _give_back(self, unit: Unit, released: Released | None) -> None:
        self.graphs.released_at = time.monotonic()
        if released is not None:
            await self._cancel(released.fluxion_jobid, released.epoch)
        self.allocations.pop(unit.id, None)
        self.ctx.holding.discard(unit.owner_uid)
        self.draining.pop(unit.id, None)
        self.ctx.wake("released")

    async def settle_draining(self) -> None:
        """Give back the allocations of ended units whose pods have all left their nodes."""
        for unit in list(self.draining.values()):
            if not self.live_pods(unit):
                async with self._fluxion_follows_database():
                    released = await self.ctx.store.release_allocation(unit.id)
                await self._give_back(unit, released)

    # ---- releasing a placed unit to Kubernetes ------------------------------------------------------

    def wrapped_objects(self, unit: Unit) -> list[dict]:
        """The API object the unit wraps (a Job, JobSet...), or its pods when it is made of pods only."""
        informer = self.ctx.objects.get(unit.kind)
        if informer is not None:
            obj = informer.get(unit.namespace, unit.object_name)
            return [obj] if obj else []
        return self.unit_pods(unit)

    async def release(self, unit_id: int, unit: Unit | None = None) -> None:
        """Start a Scheduled unit in Kubernetes from its stored allocation (safe to repeat).

        ``unit`` is the row the pass has just written (no need to read it back); without it, it is read.
        """
        ctx = self.ctx
        async with ctx.lock_for(unit_id):
            if unit is None:
                unit = await ctx.store.get(unit_id)
            if unit is None or unit.state not in HOLDING_STATES:
                return
            alloc = await self.allocation(unit_id)
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
                await self._bind_unlocked(unit, alloc, mark_released=not unit.released)
            except APIError as exc:
                log.warning("release failed; will retry", unit=unit.key, error=str(exc))
                return
            if not unit.released:
                wrapped = self.wrapped_objects(unit)
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
                await self.publish(unit, defer=SCHEDULED_STATUS_DELAY)

    async def bind_unit_pods(self, unit_id: int) -> None:
        """Bind pods of a placed unit that have appeared since (a Job's pods after the unsuspend)."""
        ctx = self.ctx
        async with ctx.lock_for(unit_id):
            unit = await ctx.store.get(unit_id)
            if unit is None or unit.state not in HOLDING_STATES:
                return
            alloc = await self.allocation(unit_id)
            if alloc is None:
                return
            try:
                await self._bind_unlocked(unit, alloc)
            except APIError as exc:
                log.warning("binding failed; will retry", unit=unit.key, error=str(exc))

    def unit_pods(self, unit: Unit) -> list[dict]:
        return self.ctx.pods.by_index(UNIT_INDEX, unit.owner_uid)

    async def _bind_unlocked(self, unit: Unit, alloc: Any, *, mark_released: bool = False) -> None:
        """Bind what is unbound of the unit's pods (all at once), record the bindings, and with
        ``mark_released`` mark the unit released in the same statement (only when every bind succeeded)."""
        ctx = self.ctx
        pods = []
        for pod in self.unit_pods(unit):
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
        plan = assign_pod_sets(room, pods, lambda pod: kind.pod_set_of(pod, su.pod_sets))
        by_name = {p["metadata"]["name"]: p for p in pods}
        todo = [(by_name[pod_name], node) for pod_name, node in plan.items()]
        unrecorded = _unrecorded_bindings(
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
        if bound or (mark_released and failed is None):
            await ctx.store.record_bindings(unit.id, bound, released=mark_released and failed is None)
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
        if any(pod_running(p) for p in self.unit_pods(unit)):
            await self.mark_running(unit.id)

    async def mark_running(self, unit_id: int) -> None:
        """A pod of the unit runs: Scheduled -> Running (one conditional UPDATE, no read first)."""
        self.running.add(unit_id)
        running = await self.ctx.store.start_running(unit_id)
        if running is not None:
            await self.publish(running)

    # ---- status -------------------------------------------------------------------------------------

    async def publish(
        self,
        unit: Unit,
        *,
        position: int | None = None,
        reserved_start: datetime | None = None,
        throttle: bool = False,
        defer: float = 0.0,
        members: int | None = None,
    ) -> None:
        """Write the FluxJob status when it changed (one PATCH per real change).

        ``throttle`` (a waiting unit's status, written by the pass): a change of queue position alone is
        refreshed every few seconds, and such writes share a budget (``waiting_status_rate``), spent from the
        head of the queue down, so a flood of submissions does not cost a status write per unit before it is
        even placed. ``defer``: write after that many seconds unless a newer status (Running) replaces it
        first, one write instead of two when a pod starts right after its binding. ``members``: a filling
        group's member count, when the caller has it.
        """
        ctx = self.ctx
        if throttle and self._unchanged_wait(unit, position, reserved_start):
            return  # checked before the status is built: the pass asks this of every waiting unit it reads
        nodes = None
        if unit.state in (SCHEDULED, RUNNING) or unit.fluxion_jobid is not None:
            alloc = await self.allocation(unit.id)
            nodes = alloc.node_names if alloc else None
        if unit.state == WAITING and members is None:  # (a joining member knows the count already)
            members = len(await ctx.store.group_members(unit.id))
        status = fluxjob_status(
            unit, nodes=nodes, position=position, reserved_start=reserved_start, members=members
        )
        superseded = self._deferred.pop(unit.id, None)
        if superseded is not None:
            superseded.cancel()
        last = self.published.get(unit.id)
        if last == status:
            return
        # (A waiting unit whose position alone moved was skipped above, by _unchanged_wait.)
        if throttle:
            if unit.id in self._waiting_writes or not self.status_budget.try_acquire():
                return  # written by a later pass if the unit still waits then
            # Written beside the pass, not in it: under a flood each write waits on a busy API server, and
            # the pass (placing the next units) must not wait for them. Writes of one FluxJob stay in order:
            # a newer status waits for this one (_after_waiting_write).
            first_wait = last is None or last.get("phase") == WAITING  # (a group that just filled)
            task = asyncio.create_task(self._write_status(unit, status, first_wait=first_wait))
            self._waiting_writes[unit.id] = task
            task.add_done_callback(lambda _t, uid=unit.id: self._waiting_writes.pop(uid, None))
            return
        if defer > 0:
            self._deferred[unit.id] = asyncio.create_task(self._write_status_later(unit, status, defer))
            return
        await self._after_waiting_write(unit.id)
        await self._write_status(unit, status)

    async def _after_waiting_write(self, unit_id: int) -> None:
        """Let a waiting status still being written land first (a newer status must never be overwritten)."""
        inflight = self._waiting_writes.get(unit_id)
        if inflight is not None:
            await asyncio.wait([inflight])

    def _unchanged_wait(self, unit: Unit, position: int | None, reserved_start: datetime | None) -> bool:
        """A waiting unit whose written status differs at most by its queue position, refreshed recently."""
        last = self.published.get(unit.id)
        if last is None or unit.state not in (QUEUED, RESERVED) or unit.id in self._deferred:
            return False
        if last.get("phase") != unit.state or last.get("reason") != unit.reason:
            return False
        if unit.state == RESERVED and last.get("reservedStart") != rfc3339(reserved_start):
            return False
        window = max(POSITION_REFRESH_SECONDS, (position or 0) * POSITION_REFRESH_PER_PLACE)
        return time.monotonic() - self.published_at.get(unit.id, 0.0) < window

    def drop_deferred(self, unit_id: int) -> None:
        """Forget a status waiting to be written (the unit moved on and a newer one will come)."""
        task = self._deferred.pop(unit_id, None)
        if task is not None:
            task.cancel()

    async def _write_status_later(self, unit: Unit, status: dict, delay: float) -> None:
        await asyncio.sleep(delay)
        self._deferred.pop(unit.id, None)  # from here on a newer status waits for this write, not cancels it
        await self._after_waiting_write(unit.id)
        await self._write_status(unit, status)

    async def _write_status(self, unit: Unit, status: dict, *, first_wait: bool = False) -> None:
        # One write at a time per FluxJob, in the order asked: a later status never lands before an earlier.
        lock = self._status_locks.setdefault(unit.id, asyncio.Lock())
        async with lock:
            # A merge patch only adds and replaces: name the keys that no longer apply so they are removed.
            patch = {**dict.fromkeys(OPTIONAL_STATUS_KEYS), **status}
            written = await self.ctx.actions.set_status(unit, patch)
            if not written and unit.id in self.fluxjob_created:
                # Sent before the FluxJob was created, answered after: it exists now.
                written = await self.ctx.actions.set_status(unit, patch)
            if not written:
                if len(self.status_missed) > 10_000:
                    self.status_missed.clear()  # FluxJobs deleted by hand: their units never need it again
                self.status_missed.add(unit.id)
            else:
                previous = self.published.get(unit.id)
                self.published[unit.id] = status
                self.published_at[unit.id] = time.monotonic()
                if status.get("phase") == WAITING and (previous or {}).get("phase") != WAITING:
                    # One Event per group, when its waiting is first shown (the status carries the count).
                    await self.ctx.actions.event(
                        [self.ctx.actions.fluxjob_ref(unit)],
                        "Waiting",
                        f"waiting for group members: {status.get('members', '?')} of {unit.size} present",
                    )
                if first_wait:
                    # Units placed at once are told "Scheduled" only (as kube-scheduler does); one that
                    # waits hears "Queued" when its waiting is first shown.
                    await self.ctx.actions.event(
                        [self.ctx.actions.fluxjob_ref(unit)],
                        "Queued",
                        f"Queued: {strategies.describe_need(unit)}",
                    )

    # ---- timeouts -----------------------------------------------------------------------------------

    async def expire_group(self, unit: Unit, members: list[dict]) -> None:
        """A pod group that never filled: fail it and delete its members (never leave pods gated forever)."""
        timeout = self.ctx.settings.group_timeout
        reason = (
            f"group did not reach {unit.size} members within {int(timeout)}s "
            f"({len(members)} present); its pods were deleted"
        )
        done = await self.finish(unit, FAILED, reason, warning=True)
        if done is None:
            return
        for pod in members:
            await self.ctx.actions.event([pod], "GroupTimeout", reason, "Warning")
            with contextlib.suppress(APIError):
                await self.ctx.actions.delete_pod(pod)

    def group_expired(self, unit: Unit) -> bool:
        timeout = self.ctx.settings.group_timeout
        return bool(
            timeout
            and unit.state == WAITING
            and datetime.now(UTC) - unit.submitted_at > timedelta(seconds=timeout)
        )


__all__ = ["QUEUED", "FluxionMatcher", "GraphKeeper", "Scheduler"]
