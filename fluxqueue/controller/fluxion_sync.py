"""Keeping Fluxion in step with the database: the cluster graph, Fluxion's copy of it, and every held
allocation replayed into it whenever the two may differ.

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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fluxqueue.controller.allocations import HeldAllocations
from fluxqueue.controller.context import Context
from fluxqueue.controller.pods import foreign_pods, uids
from fluxqueue.controller.replay import GraphIndex, ReplayError, replay_r
from fluxqueue.log import get_logger
from fluxqueue.placement.graph import ClusterGraph, build_cluster_graph
from fluxqueue.queue.store import Allocation

log = get_logger(__name__)

STATE_CHECK_SECONDS = 1.0  # how often the pass asks Fluxion whether it restarted
RELOAD_SHARE_INVERSE = 20  # a time resync waits at least 20x the last reload's duration
REPLAY_CONCURRENCY = 32  # held allocations given back to Fluxion at once after a reload
LOAD_ATTEMPTS = 3  # a load whose replays did not all fit starts over (with their pods as foreign load)


class GraphKeeper:
    """The cluster graph and the Fluxion service's copy of it."""

    def __init__(self, ctx: Context, allocations: HeldAllocations | None = None):
        self.ctx = ctx
        # The scheduler's cache of held allocations: a replay may give one a new Fluxion id.
        self.allocations = allocations if allocations is not None else HeldAllocations(ctx.store)
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
        self.built_foreign = uids(foreign)
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
        admin = self.ctx.fluxion.admin
        if admin is None:
            return False
        # Asked at most once a second, not on every pass (Stats walks Fluxion's jobs and nodes). A service
        # that restarted meanwhile is uninitialised and refuses matches, so nothing is placed on a lost state.
        now = time.monotonic()
        if now - self.checked_at < STATE_CHECK_SECONDS:
            return False
        self.checked_at = now
        try:
            stats = await admin.stats()
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
            or uids(foreign_pods(ctx.pods.items(), owners)) != self.built_foreign
        ):
            self.rebuild()
        graph = self.graph
        assert graph is not None
        await ctx.fluxion.init(graph.jgf_text, policy=ctx.settings.policy)
        self.origin = time.time()
        self.inits += 1
        epoch = self.inits
        admin = ctx.fluxion.admin
        if admin is not None:
            with contextlib.suppress(Exception):
                epoch = (await admin.stats()).get("epoch", epoch)
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
        admin = self.ctx.fluxion.admin
        if admin is None:
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
            await admin.replay(alloc.fluxion_jobid, json.dumps(r), duration=remaining)
        except Exception as exc:
            log.error("replay failed", unit=alloc.unit_id, jobid=alloc.fluxion_jobid, error=repr(exc))
            await self._forget_in_fluxion(alloc)
            return False
        return True

    async def _forget_in_fluxion(self, alloc: Any) -> None:
        """Fluxion does not hold this allocation any more: its id may be issued again, so never cancel it
        (id 0), and its pods count as foreign load until they are gone."""
        await self.ctx.store.update_allocation_id(alloc.unit_id, 0, 0)
        self.allocations.forget(alloc.unit_id)
        unit = await self.ctx.store.get(alloc.unit_id)
        if unit is not None:
            self.ctx.holding.discard(unit.owner_uid)
            self.ctx.graph_dirty = True

    def start_time(self, at: int | float) -> datetime:
        return datetime.fromtimestamp(self.origin + float(at or 0) / self.ctx.settings.time_scale, UTC)
