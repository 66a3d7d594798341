"""The scheduling loop (leader only): walk the queue in order, match each unit in Fluxion, persist what was
placed, then start it; reservations live only inside one pass.

Order of effects for a placement, so a crash anywhere is recoverable (prior-art §9 items 9, 11, 15):
match in Fluxion -> allocation + state ``Scheduled`` in one transaction -> Kubernetes (unsuspend / bind, see
:mod:`.start`) -> ``started`` flag. A unit found ``Scheduled`` but not started is started again from its stored
allocation; it is never matched twice. Keeping Fluxion in step with the database is :mod:`.fluxion_sync`; the
strategy's matcher :mod:`.matching`; ending units :mod:`.end`; status :mod:`.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fluxqueue.controller import strategy as strategies
from fluxqueue.controller.allocations import HeldAllocations
from fluxqueue.controller.context import Context
from fluxqueue.controller.dependencies import DependencyResolver
from fluxqueue.controller.end import Ender
from fluxqueue.controller.fluxion_sync import GraphKeeper
from fluxqueue.controller.matching import FluxionMatcher
from fluxqueue.controller.queueing import QueueGate
from fluxqueue.controller.start import Starter
from fluxqueue.controller.status import StatusWriter
from fluxqueue.fluxion.allocation import nodes_from_allocation
from fluxqueue.log import get_logger
from fluxqueue.placement.graph import ClusterGraph
from fluxqueue.queue.store import QUEUED, RESERVED, UNSATISFIABLE, Allocation, NodeShare, Unit

log = get_logger(__name__)

PENDING_READ_FACTOR = 4  # units read per pass, in multiples of the queue depth
PERSIST_CONCURRENCY = 64  # allocations being written (the store batches them) while the pass matches on
QUEUE_COUNT_SECONDS = 2.0  # how often the queue-length gauge is recounted (metrics are scraped every ~15 s)


class Scheduler:
    """The pass, and the lifecycle parts it and the reactor share (one instance each per leader term)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.allocations = HeldAllocations(ctx.store)
        self.graphs = GraphKeeper(ctx, self.allocations)
        self.status = StatusWriter(ctx, self.allocations)
        self.start = Starter(ctx, self.allocations, self.status, self.graphs)
        self.end = Ender(ctx, self.allocations, self.status, self.graphs, self.start)
        self.queues = QueueGate(ctx, self.end, self.graphs)
        self.dependencies = DependencyResolver(ctx, self.end, self.status)
        self.passes = 0
        self._start_tasks: set[asyncio.Task] = set()
        self.fits_cache: dict[Any, tuple[ClusterGraph, tuple[bool, str]]] = {}
        self.reserved_left: bool | None = None  # whether the last pass left Reserved units (None: unknown)
        self.counted_at = 0.0

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
        # Releases wait while this pass matches (see Ender.pass_matching); they are cancelled at its start.
        async with ctx.store.pass_lock() as mine, self.end.pass_matching:
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
            # Held units whose dependency now holds join the queue before it is read (nothing is read while
            # no unit is held).
            try:
                await self.dependencies.resolve()
            except Exception:
                log.exception("deciding held units failed")  # the queue is placed all the same
            # A pass matches at most queue-depth units: reading (and decoding) the whole queue each pass made
            # a deep queue cost O(queue) per pass. Units further back keep their last status until they
            # come within reach.
            depth = ctx.settings.queue_depth
            units = await ctx.store.pending(limit=depth * PENDING_READ_FACTOR if depth else None)
            graph = await self.graphs.ensure(resync=bool(units) and ctx.settings.strategy != "fcfs")
            await self.end.cancel_pending()
            if len(self.fits_cache) > 4096:
                self.fits_cache.clear()  # shapes of units long gone
            matcher = FluxionMatcher(ctx, graph, self.graphs.capacity, self.fits_cache)
            units, matcher = await self.queues.prepare(units, matcher, graph)  # as is without Queue objects
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
                            asyncio.create_task(self._persist_then_start(unit, decision.result, placed))
                        )
                    elif isinstance(decision, strategies.Reserve):
                        position += 1
                        result = decision.result
                        reservations.append(result.jobid)
                        keep.append(unit.id)
                        start = self.graphs.start_time(result.at)
                        nodes = ",".join(sorted((result.nodes or {}).keys()))
                        reason = f"reserved to start at {start:%H:%M:%S} UTC on {nodes}"
                        await ctx.store.reserve(unit.id, reason)
                        self.status.reasons[unit.id] = reason
                        fresh = replace(unit, state=RESERVED, reason=reason)
                        await self.status.publish(
                            fresh, position=position, reserved_start=start, throttle=True
                        )
                    elif isinstance(decision, strategies.Wait):
                        position += 1
                        if (
                            self.status.reasons.get(unit.id) != decision.reason
                            or unit.reason != decision.reason
                        ):
                            waiting_reasons.append((unit.id, decision.reason, decision.matched))
                            self.status.reasons[unit.id] = decision.reason
                        # A Reserved unit without a reservation this pass is turned back to Queued at the end.
                        fresh = replace(unit, state=QUEUED, reason=decision.reason)
                        await self.status.publish(fresh, position=position, throttle=True)
                    elif isinstance(decision, strategies.Reject):
                        await self.end.finish(
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
                    await self.end.cancel(jobid)
                # Only when this pass or the last left Reserved units (unknown after a start): with none, the
                # statement scanned every queued unit on every pass for nothing.
                if reservations or keep or self.reserved_left is not False:
                    await ctx.store.requeue_unreserved(keep_reserved=keep)
                    self.reserved_left = bool(keep)
            self.passes += 1
            await self.queues.after_pass()
            if ctx.metrics is not None and time.monotonic() - self.counted_at >= QUEUE_COUNT_SECONDS:
                self.counted_at = time.monotonic()  # the queue-length gauge (a scan of the active units)
                with contextlib.suppress(Exception):
                    ctx.metrics.set_queue_lengths(await ctx.store.state_counts())
            elapsed = time.monotonic() - started
            if ctx.metrics is not None:
                with contextlib.suppress(Exception):
                    ctx.metrics.observe_pass(elapsed, len(units), len(placed))
            if placed and self.dependencies.waits_for_starts:
                ctx.wake("placed units may be waited for (after:)")  # placing does not NOTIFY
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

    async def _persist_then_start(self, unit: Unit, result: Any, placed: list[Unit]) -> None:
        done = await self._persist_allocation(unit, result)
        if done is not None:
            placed.append(done)
            # Persisted: the Kubernetes side may start now, while the pass goes on.
            self._spawn_start(done)

    def _spawn_start(self, unit: Unit) -> None:
        task = asyncio.create_task(self.start.start(unit.id, unit))
        self._start_tasks.add(task)
        task.add_done_callback(self._start_tasks.discard)

    async def drain(self) -> None:
        """Stop in-flight releases (each is recorded before it starts and is redone by the next leader) and
        drop status writes still waiting to be batched (a replica that no longer leads writes nothing; the
        unit's next change, such as its pods running, is written by the leader)."""
        tasks = [*self._start_tasks, *self.status.pending_tasks()]
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
            nodes=shares,
            reason=reason,
        )
        if done is None:
            # Deleted (or placed by another pass) while we matched: give the resources back.
            await self.end.cancel(result.jobid)
            return None
        ctx.holding.add(done.owner_uid)
        self.allocations.hold(
            Allocation(
                unit_id=done.id,
                fluxion_jobid=result.jobid,
                epoch=self.graphs.load_id or 0,
                allocated_at=done.scheduled_at or datetime.now(UTC),
                released_at=None,
                nodes=shares,
                duration_s=done.duration_s,
            )
        )
        if ctx.metrics is not None:
            with contextlib.suppress(Exception):
                ctx.metrics.observe_scheduled(done)
        return done
