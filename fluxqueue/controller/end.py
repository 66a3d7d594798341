"""Ending a unit: its terminal state in the database, its allocation given back to Fluxion once no pod of it
is left on a node (a failed or deleted Job's pods take their grace period to stop: until then Fluxion keeps
holding it, "draining"), its status, Events and the loop woken.

Ending one run of a unit (preemption of a Job, JobSet or MPIJob): ``Preempted`` in the database first, its
workload suspended (its own controller deletes the pods, each within its grace period), and once no pod of it
is left on a node its allocation goes to ``past_allocations`` and the unit is ``Queued`` again with its
original submit time (Slurm's preempt-and-requeue)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fluxqueue.controller.allocations import HeldAllocations
from fluxqueue.controller.context import Context
from fluxqueue.controller.fluxion_sync import GraphKeeper
from fluxqueue.controller.pods import still_on_nodes, unit_pods, unrecorded_bindings, wrapped_objects
from fluxqueue.controller.start import Starter
from fluxqueue.controller.status import StatusWriter
from fluxqueue.kube.client import APIError
from fluxqueue.log import get_logger
from fluxqueue.queue.store import FAILED, HOLDING_STATES, PREEMPTED, TERMINAL_STATES, WAITING, Released, Unit
from fluxqueue.workloads.registry import workload

log = get_logger(__name__)


class Ender:
    def __init__(
        self,
        ctx: Context,
        allocations: HeldAllocations,
        status: StatusWriter,
        graphs: GraphKeeper,
        starter: Starter,
    ):
        self.ctx = ctx
        self.allocations = allocations
        self.status = status
        self.graphs = graphs
        self.starter = starter
        self.draining: dict[int, Unit] = {}  # ended units whose pods are still on their nodes
        self.to_cancel: dict[int, int] = {}  # Fluxion id -> its load, not cancelled yet; cancelled every pass
        # Held by the scheduling pass from before its first match to after its last. A release that lands
        # between two matches of one pass lets a later unit take what an earlier one was just told is busy:
        # the head reserves at a running job's end, the job is cancelled, and the next unit's plain allocate
        # backfills into the nodes the head could have had now. flux-sched's qmanager applies a cancel between
        # two scheduling loops, never inside one; so does this: a release during a pass waits for the next.
        self.pass_matching = asyncio.Lock()

    async def finish(
        self, unit: Unit, state: str, reason: str, *, warning: bool = False, event: str | None = None
    ) -> Unit | None:
        """Terminal state in the database, then the allocation goes back to Fluxion, publish, wake.
        ``event``: the Event's reason (default: the state).

        The allocation is only given back once no pod of the unit is left on a node (a failed or deleted
        Job's pods take their grace period to stop): until then Fluxion keeps holding it ("draining"), so
        nothing new is placed onto resources still in use.
        """
        ctx = self.ctx
        pods = unit_pods(self.ctx, unit)
        live = still_on_nodes(pods)
        recorded = self.starter.recorded_binds.pop(unit.id, set())
        if any(
            (p.get("spec") or {}).get("nodeName") and p["metadata"].get("uid") not in recorded for p in pods
        ):
            # Bound by a process that stopped before recording it (normally every binding is recorded here).
            with contextlib.suppress(Exception):  # a record for people; the unit ends all the same
                alloc = await self.allocations.get(unit.id)
                unrecorded = unrecorded_bindings(alloc, pods, recorded) if alloc else []
                if unrecorded:
                    await ctx.store.record_bindings(unit.id, unrecorded)
        async with self._fluxion_follows_database():
            done, released = await ctx.store.finish(unit.id, state, reason, release=not live)
        if done is None:
            return None
        if live:
            self.draining[done.id] = done
        else:
            await self.give_back(done, released)
        log.info("unit finished", unit=done.key, state=state, reason=reason)
        await self.status.publish(done)
        wrapped = wrapped_objects(self.ctx, done)
        event_reason = event or state
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
        self.status.forget_status(done.id)
        self.status.fluxjob_created.discard(done.id)
        ctx.actions.forget_fluxjob(done)
        self.starter.running.discard(done.id)
        return done

    def live_pods(self, unit: Unit) -> list[dict]:
        """Pods of the unit still bound to a node and not finished."""
        return still_on_nodes(unit_pods(self.ctx, unit))

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

    async def give_back(self, unit: Unit, released: Released | None) -> None:
        self.graphs.released_at = time.monotonic()
        if released is not None:
            await self._release(released.fluxion_jobid, released.epoch)
        self.allocations.forget(unit.id)
        self.ctx.holding.discard(unit.owner_uid)
        self.draining.pop(unit.id, None)
        self.ctx.wake("released")

    async def preempt(self, unit: Unit, reason: str) -> Unit | None:
        """Preempt a unit whose workload can be suspended (:attr:`Workload.requeueable`): Preempted, its
        workload suspended, an Event on its FluxJob and its object; requeued once its pods are gone. Safe to
        repeat (a controller that stopped half way): a unit already Preempted is only suspended again if it is
        not, and watched until its pods are gone. Raises the API error when the suspend failed (the unit
        stays Preempted, holding, and the caller tries again)."""
        ctx = self.ctx
        told = False
        if unit.state in HOLDING_STATES:
            moved = await ctx.store.preempt(unit.id, reason)
            if moved is None:
                return None  # ended, or preempted by another pass, meanwhile
            unit, told = moved, True
        elif unit.state != PREEMPTED:
            return None
        self.draining[unit.id] = unit  # holds until its pods are gone
        self.starter.running.discard(unit.id)
        self.starter.recorded_binds.pop(unit.id, None)
        kind = workload(unit.kind)
        informer = ctx.objects.get(unit.kind)
        obj = informer.get(unit.namespace, unit.object_name) if informer is not None else None
        if obj is not None and not kind.suspended(obj):
            await ctx.actions.suspend_workload(kind, unit.namespace, unit.object_name)
        if told:
            log.info("preempted", unit=unit.key, reason=reason)
            await self.status.publish(unit)
            await ctx.actions.event(
                [ctx.actions.fluxjob_ref(unit), *wrapped_objects(ctx, unit)[:1]],
                "Preempted",
                reason,
                "Warning",
            )
        if not self.live_pods(unit):
            await self.requeue(unit)
        return unit

    async def requeue(self, unit: Unit) -> Unit | None:
        """A preempted unit whose pods are all gone: Queued again (its allocation archived and given back)."""
        reason = f"requeued after it was {unit.reason}" if unit.reason.startswith("preempted") else "requeued"
        async with self._fluxion_follows_database():
            done, released = await self.ctx.store.requeue(unit.id, reason)
        if done is None:
            fresh = await self.ctx.store.get(unit.id)
            if fresh is not None and fresh.state in TERMINAL_STATES:
                # Ended while preempted (its object deleted): the normal end gives the allocation back.
                async with self._fluxion_follows_database():
                    released = await self.ctx.store.release_allocation(unit.id)
                await self.give_back(fresh, released)
            else:
                self.draining.pop(unit.id, None)
            return None
        await self.give_back(done, released)
        log.info("requeued", unit=done.key, requeues=done.requeues)
        await self.status.publish(done)
        await self.ctx.actions.event(
            [self.ctx.actions.fluxjob_ref(done)],
            "Requeued",
            "its pods are gone; queued again in its original place (submitted "
            f"{done.submitted_at.strftime('%Y-%m-%d %H:%M:%S')}Z)",
        )
        self.ctx.wake("requeued")
        return done

    async def settle_draining(self) -> None:
        """Give back the allocations of ended units whose pods have all left their nodes, and requeue the
        preempted ones."""
        for unit in list(self.draining.values()):
            if not self.live_pods(unit):
                if unit.state == PREEMPTED:
                    await self.requeue(unit)
                    continue
                async with self._fluxion_follows_database():
                    released = await self.ctx.store.release_allocation(unit.id)
                await self.give_back(unit, released)

    async def _release(self, jobid: int, load_id: int) -> None:
        """Cancel a released allocation in Fluxion now, or at the next pass's start if a pass is matching."""
        if self.pass_matching.locked():
            if jobid > 0:
                self.to_cancel[jobid] = load_id  # the pass ending wakes the loop (give_back wakes it too)
            return
        async with self.pass_matching:
            await self.cancel(jobid, load_id)

    async def cancel(self, jobid: int | None, load_id: int | None = None) -> None:
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

    async def cancel_pending(self) -> None:
        for jobid, load_id in list(self.to_cancel.items()):
            await self.cancel(jobid, load_id)

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
