"""The tenant queues inside the pass: the Queue objects read from their informer, usage read from PostgreSQL,
the pass's units put in queue order and every match checked against its queue first (quota arithmetic never
starts a unit on its own: a unit admitted by its queue still needs Fluxion to place it on real nodes, which
is how kueue#407 cannot happen here). Under ``queue_admission = "quota"`` (a comparison mode, Kueue's way) a
unit the arithmetic admits holds its quota from then on, placed or not, until Fluxion places it.

With no Queue objects this costs nothing: :meth:`QueueGate.prepare` returns the pass's units and matcher
untouched without a query. The decisions themselves are pure (:mod:`fluxqueue.queues.admission`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fluxqueue.controller import strategy as strategies
from fluxqueue.controller.context import Context
from fluxqueue.controller.preempting import Preempter
from fluxqueue.kube.client import APIError
from fluxqueue.log import get_logger
from fluxqueue.placement.graph import ClusterGraph
from fluxqueue.queues import QUEUES_API
from fluxqueue.queues.admission import QUOTA, UNKNOWN, PassQuotas, Refusal
from fluxqueue.queues.share import CPU, GPU, MEMORY, RESOURCES, Amounts, DecayedUsage, add, format_amount
from fluxqueue.queues.spec import QueueBook

log = get_logger(__name__)

STATUS_SECONDS = 2.0  # how often Queue status, the database mirror and the queue metrics are refreshed


class QueueGate:
    def __init__(self, ctx: Context, end: Any = None, graphs: Any = None, half_life: float | None = None):
        self.ctx = ctx
        self.preempter = Preempter(ctx, end, graphs) if end is not None and graphs is not None else None
        self.blocked: list[Any] = []  # units this pass that their queue admits and Fluxion could not place
        self._graph: ClusterGraph | None = None
        self.half_life = half_life if half_life is not None else ctx.settings.queue_half_life
        self.decayed: dict[str, DecayedUsage] = {}
        self._restored = False  # the previous leader's decayed usage read back (once per leader term)
        self._book: QueueBook = QueueBook()
        self._book_key: tuple = ()
        self._status_at = 0.0
        self._written: dict[str, dict] = {}  # queue -> the status last written
        self._told_unknown: set[int] = set()  # units whose unknown queue has had its Event
        self._tasks: set[asyncio.Task] = set()
        self.last: PassQuotas | None = None
        self._usage_rows: list[dict] = []  # the last pass's usage rows (per namespace and label)
        # Quota-only admission: units admitted by quota arithmetic and not placed yet, holding their quota.
        self.quota_only = getattr(ctx.settings, "queue_admission", "nodes") == "quota"
        self.held: dict[int, Any] = {}
        self.admitted_unplaced = 0  # units ever held so (each counted once)

    def book(self) -> QueueBook:
        """The declared queues (rebuilt only when a Queue object changed)."""
        informer = self.ctx.queues
        if informer is None or not informer.cache:
            if self._book_key:
                self._book, self._book_key = QueueBook(), ()
            return self._book
        items = informer.items()
        key = tuple(sorted(((o.get("metadata") or {}).get("resourceVersion") or "") for o in items))
        if key != self._book_key:
            self._book, self._book_key = QueueBook.from_objects(items), key
            self._written = {}  # a Queue made again under an old name has no status yet
        return self._book

    async def prepare(self, units: list[Any], matcher: Any, graph: ClusterGraph) -> tuple[list[Any], Any]:
        """The pass's units in queue order and a matcher that asks each unit's queue before Fluxion."""
        book = self.book()
        if not book:
            if self.last is not None:  # the last Queue object went: the psql mirror goes with it (once)
                self.last = None
                with contextlib.suppress(Exception):
                    await self.ctx.store.mirror_queues([])
            return units, matcher
        self._usage_rows = await self.ctx.store.queue_usage()
        usage = queue_amounts(book, self._usage_rows)
        now = time.monotonic() * self.ctx.settings.time_scale
        if not self._restored:
            await self._restore(book, now)
        for spec in book.all():
            decayed = self.decayed.setdefault(spec.name, DecayedUsage(self.half_life))
            decayed.observe(now, usage.get(spec.name, {}))
        quotas = self.last = PassQuotas(book, usage, graph_capacity(graph), self.decayed)
        if self.quota_only:  # admitted units waiting for nodes keep holding (gone ones let go)
            pending = {u.id: u for u in units}
            self.held = {i: pending[i] for i in self.held if i in pending}
            for unit in self.held.values():
                quotas.charge(unit)
        self.blocked = []
        self._graph = graph
        return quotas.order(units), QuotaMatcher(matcher, quotas, self)

    async def _restore(self, book: QueueBook, now: float) -> None:
        """Before this term's first fair share: the decayed usage the last leader wrote with the queue mirror,
        aged by the wall-clock time since (a restart or failover must not forget who used the cluster lately).
        A failed read fails the pass, as a failed usage read does, and is tried again by the next one."""
        stored = await self.ctx.store.decayed_usage()
        scale = self.ctx.settings.time_scale
        for spec in book.all():
            if spec.name in stored:
                mean, age = stored[spec.name]
                decayed = self.decayed.setdefault(spec.name, DecayedUsage(self.half_life))
                decayed.restore(now, mean, age * scale)
        self._restored = True
        if stored:
            log.info("fair-share memory read back", queues=len(stored))

    def hold(self, unit: Any) -> None:
        """Quota-only admission: ``unit`` (charged) keeps its quota though Fluxion could not place it."""
        if unit.id in self.held:
            return
        self.held[unit.id] = unit
        self.admitted_unplaced += 1
        if self.ctx.metrics is not None and self.last is not None:
            with contextlib.suppress(Exception):
                self.ctx.metrics.admitted_unplaced(self.last.queue_of(unit))

    def refused(self, unit: Any, refusal: Refusal) -> None:
        if refusal.kind == UNKNOWN and unit.id not in self._told_unknown:
            self._told_unknown.add(unit.id)
            if len(self._told_unknown) > 65536:
                self._told_unknown.clear()
            actions = self.ctx.actions
            with contextlib.suppress(Exception):
                ref = actions.fluxjob_ref(unit)
                self._spawn(actions.event([ref], "UnknownQueue", refusal.message, "Warning"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def after_pass(self) -> None:
        """Preemption (inside the pass lock, once the pass's reservations are gone), then Queue status, the
        database mirror and metrics, at most every STATUS_SECONDS."""
        quotas = self.last
        if quotas is None:
            return
        if self.preempter is not None and self._graph is not None:
            try:
                if await self.preempter.run(quotas, self.blocked, self._graph):
                    self._status_at = 0.0
            except Exception:
                log.exception("preemption failed")
        self.blocked = []
        if time.monotonic() - self._status_at < STATUS_SECONDS:
            return
        self._status_at = time.monotonic()
        try:
            pending_rows = await self.ctx.store.queue_pending()
        except Exception as exc:
            log.warning("could not read queue demand", error=str(exc))
            return
        book = quotas.book
        pending = queue_amounts(book, pending_rows)
        pending_units = queue_counts(book, pending_rows)
        running = self._running_counts(book)
        now = time.monotonic() * self.ctx.settings.time_scale
        mirror = []
        for spec in book.all():
            share = quotas.share(spec.name)
            status = queue_status(
                spec,
                quotas.usage.get(spec.name, {}),
                pending.get(spec.name, {}),
                running.get(spec.name, 0),
                pending_units.get(spec.name, 0),
                share,
            )
            mirror.append(
                {
                    "name": spec.name,
                    "namespaces": list(spec.namespaces),
                    "quota": spec.quota,
                    "limit": spec.limit,
                    "weight": spec.weight,
                    "share": share,
                    **self._decayed_row(spec.name, now),
                }
            )
            if self.ctx.metrics is not None:
                with contextlib.suppress(Exception):
                    self.ctx.metrics.set_queue(
                        spec.name,
                        quotas.usage.get(spec.name, {}),
                        spec.quota,
                        running.get(spec.name, 0),
                        pending_units.get(spec.name, 0),
                        share,
                    )
            if spec.builtin or self._written.get(spec.name) == status:
                continue
            try:
                await self.ctx.client.patch(QUEUES_API, spec.name, {"status": status}, subresource="status")
                self._written[spec.name] = status
            except APIError as exc:
                if exc.code != 404:
                    log.warning("could not update Queue status", queue=spec.name, error=str(exc))
        try:
            await self.ctx.store.mirror_queues(mirror)
        except Exception as exc:
            log.warning("could not mirror the queues into the database", error=str(exc))

    def _decayed_row(self, name: str, now: float) -> dict[str, Any]:
        """The queue's decayed usage for the mirror, with its age in wall seconds (the database stamps it
        with its own clock, so the next leader can decay it over the downtime)."""
        decayed = self.decayed.get(name)
        if decayed is None or decayed.at is None:
            return {}
        age = max(0.0, now - decayed.at) / self.ctx.settings.time_scale
        return {"decayed": {r: round(v, 3) for r, v in decayed.mean.items()}, "decayed_age": age}

    def _running_counts(self, book: QueueBook) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._usage_rows:
            name = book.queue_of(row["namespace"], row["queue"])
            counts[name] = counts.get(name, 0) + int(row["units"])
        return counts


class QuotaMatcher:
    """The pass's matcher, behind each unit's queue: a unit its queue refuses is not matched (its result says
    why); a unit Fluxion allocates is charged to its queue at once, so the rest of the pass sees it."""

    def __init__(self, inner: Any, quotas: PassQuotas, gate: QueueGate):
        self.inner = inner
        self.quotas = quotas
        self.gate = gate

    @property
    def calls(self) -> int:
        return self.inner.calls

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    def fits_ever(self, unit: Any) -> tuple[bool, str]:
        return self.inner.fits_ever(unit)

    def _refusal(self, unit: Any) -> Refusal | None:
        if unit.id in self.gate.held:
            return None  # quota-only admission: admitted before, still holding
        refusal = self.quotas.check(unit)
        if refusal is not None:
            self.gate.refused(unit, refusal)
            if refusal.kind == QUOTA:
                self.gate.blocked.append(unit)  # may evict lower-priority units of its own queue
        return refusal

    def _charge(self, unit: Any) -> None:
        if unit.id not in self.gate.held:
            self.quotas.charge(unit)

    def _settle(self, unit: Any, result: Any) -> None:
        status = strategies.status_name(result)
        if status == strategies.ALLOCATED:
            self.gate.held.pop(unit.id, None)  # from now on in the database's usage
        elif self.gate.quota_only:
            self.gate.hold(unit)  # Kueue's way: admitted, holding, waiting for nodes
        else:
            self.quotas.charge(unit, -1)  # charged when asked: only a placed unit holds
        if status in (strategies.BUSY, strategies.RESERVED):
            self.gate.blocked.append(unit)  # a candidate preemptor

    async def match(self, unit: Any, reserve: bool) -> Any:
        refusal = self._refusal(unit)
        if refusal is not None:
            return QuotaRefused(refusal)
        self._charge(unit)
        result = await self.inner.match(unit, reserve)
        self._settle(unit, result)
        return result

    async def match_many(
        self, units: list[Any], reserve: bool, *, stop_after_first_unallocated: bool
    ) -> list:
        """The leading units their queues admit, each charged before the next is asked (as if all were
        placed: a run never takes a queue above its limit), in one round trip; the first refused unit ends
        the run (it comes first in the next call, which returns its refusal)."""
        admitted: list[Any] = []
        for unit in units:
            refusal = self._refusal(unit)
            if refusal is not None:
                if not admitted:
                    return [QuotaRefused(refusal)]
                break
            self._charge(unit)
            admitted.append(unit)
        if len(admitted) == 1:
            results = [await self.inner.match(admitted[0], reserve)]
        else:
            results = await self.inner.match_many(
                admitted, reserve, stop_after_first_unallocated=stop_after_first_unallocated
            )
        for n, unit in enumerate(admitted):
            if n >= len(results):
                if unit.id not in self.gate.held:
                    self.quotas.charge(unit, -1)  # not asked in this call
            else:
                self._settle(unit, results[n])
        return results


class QuotaRefused:
    """A match result for a unit its queue does not let start now (strategy.QUOTA)."""

    status = "QUOTA"

    def __init__(self, refusal: Refusal):
        self.refusal = refusal
        self.message = refusal.message


def graph_capacity(graph: ClusterGraph) -> Amounts:
    """What the nodes offer fluxqueue in all (after foreign pods)."""
    cpu = memory = gpus = 0
    for node in graph.nodes.values():
        cpu += node.cores * 1000
        memory += node.memory
        gpus += node.gpus
    return {CPU: cpu, MEMORY: memory, GPU: gpus}


def queue_amounts(book: QueueBook, rows: list[dict]) -> dict[str, Amounts]:
    """Rows of (namespace, queue label, cpu_millis, memory_bytes, gpus) summed per queue they belong to."""
    out: dict[str, Amounts] = {}
    for row in rows:
        name = book.queue_of(row["namespace"], row["queue"])
        amounts = {
            CPU: int(row["cpu_millis"] or 0),
            MEMORY: int(row["memory_bytes"] or 0),
            GPU: int(row["gpus"] or 0),
        }
        out[name] = add(out.get(name, {}), amounts)
    return out


def queue_counts(book: QueueBook, rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        name = book.queue_of(row["namespace"], row["queue"])
        out[name] = out.get(name, 0) + int(row["units"])
    return out


def queue_status(
    spec: Any, usage: Amounts, pending: Amounts, running: int, pending_units: int, share: float
) -> dict[str, Any]:
    """The Queue's status: usage and pending per resource, unit counts, the fair-share value, conditions."""
    shown = [r for r in RESOURCES if r in spec.quota or r in spec.limit or usage.get(r) or pending.get(r)]
    # "cpu 16/4, memory 4Gi": usage over quota where there is one
    summary = ", ".join(
        f"{r} {format_amount(r, usage.get(r, 0))}"
        + (f"/{format_amount(r, spec.quota[r])}" if r in spec.quota else "")
        for r in shown
        if r in spec.quota or usage.get(r)
    )
    problems = list(spec.problems)
    return {
        "usage": {r: format_amount(r, usage.get(r, 0)) for r in shown},
        "pending": {r: format_amount(r, pending.get(r, 0)) for r in shown},
        "usageSummary": summary,
        "runningUnits": running,
        "pendingUnits": pending_units,
        "share": f"{share:.3f}",
        "conditions": [
            {
                "type": "Valid",
                "status": "False" if problems else "True",
                "reason": "InvalidFields" if problems else "Valid",
                "message": "; ".join(problems) if problems else "every field is understood",
            }
        ],
    }
