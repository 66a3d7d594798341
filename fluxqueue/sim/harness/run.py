"""`fluxqueue sim run`: submit a workload to a running SimSystem at its (scaled) submit times, watch it to
completion, and record everything the report needs.

Submission goes through the Kubernetes API exactly as a user's would (the admission webhook, the Job
controller and the kubelets all take part). The recorder watches pods, Jobs and FluxJobs through the same
API and samples utilisation and queue length on a fixed wall-clock period.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from fluxqueue.kube import names
from fluxqueue.log import get_logger
from fluxqueue.sim.harness.system import SimSystem
from fluxqueue.sim.report import (
    Progress,
    Recorder,
    histogram_quantiles,
    node_allocatable,
    percentile,
    summarize,
)
from fluxqueue.sim.report.dags import dag_report
from fluxqueue.sim.workload import SETUP_KIND, WorkloadItem

log = get_logger(__name__)


@dataclass
class RunOptions:
    timeout: float = 600.0  # wall seconds to wait for every job to finish
    sample_interval: float = 0.25  # wall seconds between utilisation/queue samples
    submit_concurrency: int = 64  # API creates in flight at once
    gang_skew: float = 5.0  # wall seconds within which all of a gang's pods must be bound
    progress: bool = True
    # The controller plans backfill in real seconds; the kubelets run pods time_scale times faster. Dividing
    # declared walltimes by the time scale at submission keeps the two clocks consistent.
    scale_durations: bool = True


def resource_for(obj: dict[str, Any]) -> tuple[str, str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = {
        "Pod": "pods",
        "Job": "jobs",
        "Namespace": "namespaces",
        "ConfigMap": "configmaps",
        "Secret": "secrets",
        "Service": "services",
        "PriorityClass": "priorityclasses",
        "Deployment": "deployments",
        "StatefulSet": "statefulsets",
        "ReplicaSet": "replicasets",
    }.get(obj["kind"])
    if plural is None:
        plural = obj["kind"].lower() + "s"
    return group, version, plural


CLUSTER_SCOPED = {"Namespace", "PriorityClass", "Node", "Queue"}  # Queue: fluxqueue.io tenant queues


def scale_walltime(manifest: dict[str, Any], time_scale: float) -> dict[str, Any]:
    """A copy whose fluxqueue.io/duration is in real seconds (at least 1)."""
    from fluxqueue.placement.units import UnitError, parse_duration

    if time_scale == 1:
        return manifest
    out = {**manifest, "metadata": dict(manifest.get("metadata") or {})}
    for attr in ("labels", "annotations"):
        values = out["metadata"].get(attr)
        if values and names.LABEL_DURATION in values:
            try:
                seconds = parse_duration(str(values[names.LABEL_DURATION]))
            except UnitError:
                continue  # invalid on purpose? let the webhook say so
            out["metadata"][attr] = {
                **values,
                names.LABEL_DURATION: str(max(1, math.ceil(seconds / time_scale))),
            }
    return out


class Run:
    def __init__(
        self,
        system: SimSystem,
        items: list[WorkloadItem],
        options: RunOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system = system
        self.items = items
        self.options = options or RunOptions()
        self.clock = clock
        self.recorder: Recorder | None = None
        self.errors: list[str] = []
        self.timed_out = False
        self._tasks: list[asyncio.Task] = []

    async def _watch(self, resource, handler) -> None:
        from fluxqueue.sim.apiserver import APIError

        client = self.system.api.client
        rv = None
        while True:
            try:
                if rv is None:
                    listing = await client.list(resource)
                    rv = listing["metadata"]["resourceVersion"]
                    for obj in listing["items"]:
                        handler("ADDED", obj, self.clock())
                async for ev in client.watch(resource, resource_version=rv):
                    if ev["type"] == "BOOKMARK":
                        rv = ev["object"]["metadata"].get("resourceVersion", rv)
                        continue
                    rv = ev["object"]["metadata"].get("resourceVersion", rv)
                    handler(ev["type"], ev["object"], self.clock())
            except APIError as exc:
                if exc.code == 410:
                    rv = None  # too old: relist (events replayed as ADDED are idempotent)
                    continue
                raise
            await asyncio.sleep(0.05)

    async def _create(self, obj: dict[str, Any]) -> None:
        from fluxqueue.sim.apiserver import APIError

        meta = obj.get("metadata") or {}
        namespace = None if obj["kind"] in CLUSTER_SCOPED else meta.get("namespace") or "default"
        try:
            await self.system.api.client.create(resource_for(obj), obj, namespace=namespace)
        except APIError as exc:
            if exc.code == 409 and obj["kind"] not in ("Pod", "Job"):
                return  # setup object already there (e.g. a namespace)
            self.errors.append(f"create {obj['kind']} {meta.get('namespace', '')}/{meta.get('name')}: {exc}")
            log.warning("submission refused", kind=obj["kind"], name=meta.get("name"), error=str(exc))

    async def _submit_all(self, t0: float) -> None:
        opts = self.options
        scale = self.system.config.time_scale
        sem = asyncio.Semaphore(opts.submit_concurrency)
        pending: set[asyncio.Task] = set()

        async def submit(item: WorkloadItem) -> None:
            async with sem:
                for m in item.manifests:
                    await self._create(scale_walltime(m, scale) if opts.scale_durations else m)

        for item in self.items:
            if item.kind == SETUP_KIND:
                for m in item.manifests:
                    await self._create(m)
                continue
            due = t0 + item.submit_at / scale
            delay = due - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            # Submission time is when the user asks, even if creating the objects takes a moment.
            self.recorder.submitted(item, self.clock())
            task = asyncio.create_task(submit(item))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    async def execute(self) -> dict[str, Any]:
        from fluxqueue.sim.apiserver import resources as R

        opts = self.options
        system = self.system
        nodes = await system.api.client.list(R.NODES)
        rec = Recorder(
            {n["metadata"]["name"]: node_allocatable(n) for n in nodes["items"]},
            time_scale=system.config.time_scale,
            gang_skew=opts.gang_skew,
        )
        self.recorder = rec
        units = [i for i in self.items if i.kind != SETUP_KIND and i.pods > 0]
        progress = Progress(len(units)) if opts.progress else None
        t0 = self.clock()
        rec.start(t0)
        self._tasks = [
            asyncio.create_task(self._watch(R.PODS, rec.pod_event)),
            asyncio.create_task(self._watch(R.JOBS, rec.job_event)),
            asyncio.create_task(self._watch(R.FLUXJOBS, rec.fluxjob_event)),
        ]
        submitter = asyncio.create_task(self._submit_all(t0))
        deadline = (
            t0 + opts.timeout + (max((i.submit_at for i in units), default=0) / system.config.time_scale)
        )
        try:
            while True:
                now = self.clock()
                rec.sample(now)
                if progress is not None:
                    c = rec.counts()
                    progress.update(c["done"], c["running"], c["queued"], rec.sim_time(now))
                if submitter.done():
                    submitter.result()  # surface a crash in the submitter
                    if rec.all_finished():
                        break
                for task in self._tasks:
                    if task.done():
                        task.result()
                if now > deadline:
                    self.timed_out = True
                    break
                await asyncio.sleep(opts.sample_interval)
        finally:
            submitter.cancel()
            for task in self._tasks:
                task.cancel()
            for task in (*self._tasks, submitter):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        end = self.clock()
        rec.sample(end)
        rec.finish(end)
        if progress is not None:
            c = rec.counts()
            progress.close(c["done"], c["running"], c["queued"], rec.sim_time(end))
        rec.add_rejections(list(getattr(system.cluster, "rejections", []) or []))
        extra: dict[str, Any] = {"match_latency_ms": await self.match_latency()}
        dags = dag_report(self.items, rec.units, system.config.time_scale)
        if dags:
            extra["dags"] = dags
        preemptions = await self.preemptions()
        if preemptions:
            extra["preemptions"] = preemptions
        if self.errors:
            extra["submission_errors"] = self.errors[:50]
        if self.timed_out:
            extra["timed_out"] = True
            extra["stuck"] = rec.stuck(20)
        return summarize(rec, run=self.run_info(), extra=extra)

    def run_info(self) -> dict[str, Any]:
        cfg = self.system.config
        return {
            "nodes": cfg.nodes,
            "cpus": cfg.cpus,
            "memory": cfg.memory,
            "gpus": cfg.gpus,
            "racks": cfg.racks,
            "time_scale": cfg.time_scale,
            "strategy": cfg.strategy,
            "policy": cfg.policy,
            "jobs": sum(1 for i in self.items if i.kind != SETUP_KIND),
        }

    async def preemptions(self) -> dict[str, Any] | None:
        """Evictions made for tenant queues (none without Queue objects): how many, why, and what became of
        the victims (requeued: a suspended workload queued again; deleted: a pod or pod group)."""
        if self.system.dsn is None:
            return None
        try:
            conn = await asyncpg.connect(self.system.dsn)
        except (OSError, asyncpg.PostgresError):
            return None
        try:
            rows = await conn.fetch(
                "SELECT p.cause, v.kind IN ('Pod', 'PodGroup') AS deleted, count(*) AS n "
                "FROM fluxqueue.preemptions p JOIN fluxqueue.units v ON v.id = p.victim_id GROUP BY 1, 2"
            )
            requeues = await conn.fetchval("SELECT coalesce(sum(requeues), 0) FROM fluxqueue.units")
        finally:
            await conn.close()
        if not rows:
            return None
        by_cause: dict[str, int] = {}
        for r in rows:
            by_cause[r["cause"]] = by_cause.get(r["cause"], 0) + r["n"]
        return {
            "count": sum(r["n"] for r in rows),
            "by_cause": by_cause,
            "deleted": sum(r["n"] for r in rows if r["deleted"]),
            "requeued": int(requeues),
        }

    async def match_latency(self) -> dict[str, Any]:
        """Fluxion match latency (ms): the controller's histogram when it has samples, else the round trips
        timed around the controller's Fluxion client, else the Fluxion service's own statistics."""
        metrics = self.system.metrics
        hist = getattr(metrics, "match_duration", None)
        if hist is not None:
            q = _histogram_ms(hist)
            if q.get("count"):
                q["source"] = "controller fluxqueue_fluxion_match_duration_seconds"
                return q
        samples = self.system.match_seconds
        if samples:
            return {
                "count": len(samples),
                "p50": percentile(samples, 50) * 1000,
                "p99": percentile(samples, 99) * 1000,
                "max": max(samples) * 1000,
                "source": "controller's Fluxion client (round trip)",
            }
        try:
            from fluxqueue.fluxion.client import FluxionClient

            client = FluxionClient(self.system.fluxion_address)
            try:
                stats = await client.stats()
            finally:
                await client.close()
        except Exception as exc:
            return {"error": f"no match statistics: {exc}"}
        return _stats_ms(stats)


def _histogram_ms(hist) -> dict[str, Any]:
    buckets: dict[float, float] = {}
    for metric in hist.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    q = histogram_quantiles(sorted(buckets.items()), (50, 99))
    return {k: (v * 1000 if k.startswith("p") and v is not None else v) for k, v in q.items()}


def _stats_ms(stats: dict[str, Any]) -> dict[str, Any]:
    """The Fluxion service's own match statistics (it keeps count, mean and extremes, not quantiles)."""
    out: dict[str, Any] = {"source": "fluxion stats", "count": stats.get("matches")}
    for key, name in (
        ("match_avg_seconds", "mean"),
        ("match_max_seconds", "max"),
        ("match_min_seconds", "min"),
    ):
        if isinstance(stats.get(key), int | float):
            out[name] = stats[key] * 1000
    return out
