"""FluxJob status: written when it changes, in order per FluxJob, waiting units' writes throttled and
beside the pass (one PATCH per real change; a flood of submissions costs no write per unit before it is placed)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from fluxqueue.controller import strategy as strategies
from fluxqueue.controller.allocations import HeldAllocations
from fluxqueue.controller.context import Context
from fluxqueue.controller.fluxjob import fluxjob_status, rfc3339
from fluxqueue.kube.client import TokenBucket
from fluxqueue.queue.store import HELD, QUEUED, RESERVED, RUNNING, SCHEDULED, WAITING, Unit

POSITION_REFRESH_SECONDS = 5.0
# Further back in the queue, a position is refreshed less often (0.1 s per place: the 2,000th every 200 s), so a
# deep queue costs tens of status writes per second, not one per unit every few seconds (which, at 2,000 units,
# used the whole API rate limit and starved the bindings).
POSITION_REFRESH_PER_PLACE = 0.1
OPTIONAL_STATUS_KEYS = ("queuePosition", "reservedStart", "members", "nodes", "nodeList", "fluxionJobID")


class StatusWriter:
    def __init__(self, ctx: Context, allocations: HeldAllocations):
        self.ctx = ctx
        self.allocations = allocations
        self.published: dict[int, dict] = {}  # unit id -> last status written
        self.published_at: dict[int, float] = {}
        # Units whose status write found no FluxJob (placed while it was being created): written again once
        # it exists (Reactor._submit_unlocked).
        self.missed: set[int] = set()
        self.fluxjob_created: set[int] = set()  # units whose FluxJob the reactor has seen created
        self.reasons: dict[int, str] = {}  # unit id -> reason last written for a waiting unit
        self.budget = TokenBucket(ctx.settings.waiting_status_rate, ctx.settings.waiting_status_burst)
        self._deferred: dict[int, asyncio.Task] = {}  # unit id -> a status write waiting to be superseded
        self._waiting_writes: dict[int, asyncio.Task] = {}  # unit id -> its waiting status being written
        self._locks: dict[int, asyncio.Lock] = {}

    def pending_tasks(self) -> list[asyncio.Task]:
        """Writes waiting or under way (a replica that no longer leads drops them)."""
        tasks = [*self._deferred.values(), *self._waiting_writes.values()]
        self._deferred.clear()
        self._waiting_writes.clear()
        return tasks

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
        nodes = jobid = None
        if unit.state in (SCHEDULED, RUNNING) or unit.scheduled_at is not None:  # it holds or held one
            alloc = await self.allocations.get(unit.id)
            if alloc is not None:
                nodes, jobid = alloc.node_names, alloc.fluxion_jobid
        if unit.state == WAITING and members is None:  # (a joining member knows the count already)
            members = len(await ctx.store.group_members(unit.id))
        status = fluxjob_status(
            unit, nodes=nodes, jobid=jobid, position=position, reserved_start=reserved_start, members=members
        )
        superseded = self._deferred.pop(unit.id, None)
        if superseded is not None:
            superseded.cancel()
        last = self.published.get(unit.id)
        if last == status:
            return
        # (A waiting unit whose position alone moved was skipped above, by _unchanged_wait.)
        if throttle:
            if unit.id in self._waiting_writes or not self.budget.try_acquire():
                return  # written by a later pass if the unit still waits then
            # Written beside the pass, not in it: under a flood each write waits on a busy API server, and
            # the pass (placing the next units) must not wait for them. Writes of one FluxJob stay in order:
            # a newer status waits for this one (_after_waiting_write).
            # (a group that just filled, a unit whose dependency just came to hold)
            first_wait = last is None or last.get("phase") in (WAITING, HELD)
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
        lock = self._locks.setdefault(unit.id, asyncio.Lock())
        async with lock:
            # A merge patch only adds and replaces: name the keys that no longer apply so they are removed.
            patch = {**dict.fromkeys(OPTIONAL_STATUS_KEYS), **status}
            written = await self.ctx.actions.set_status(unit, patch)
            if not written and unit.id in self.fluxjob_created:
                # Sent before the FluxJob was created, answered after: it exists now.
                written = await self.ctx.actions.set_status(unit, patch)
            if not written:
                if len(self.missed) > 10_000:
                    self.missed.clear()  # FluxJobs deleted by hand: their units never need it again
                self.missed.add(unit.id)
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

    def forget_status(self, unit_id: int) -> None:
        """Drop what is remembered of an ended unit's status (its last status is written)."""
        self.published.pop(unit_id, None)
        self.published_at.pop(unit_id, None)
        self.reasons.pop(unit_id, None)
        self._locks.pop(unit_id, None)
