"""Prometheus metrics and the health endpoints of the controller.

Names follow Kueue's convention ``<project>_<thing>_<unit>`` (``kueue_admission_wait_time_seconds``,
``kueue_pending_workloads``): base units (seconds), counters end in ``_total``.

Each ``Metrics`` owns a ``CollectorRegistry``, so several controllers in one process (tests, the simulator)
never clash over a name. ``METRICS`` is the process-wide instance the controller uses by default.

    from fluxqueue.metrics import METRICS, metrics_app
    METRICS.submissions.labels(kind="Job").inc()
    with METRICS.pass_duration.time(): ...
    app = metrics_app(METRICS, ready=lambda: controller.ready)   # GET /metrics, /healthz, /readyz
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import process_collector as _process

NAMESPACE = "fluxqueue"

# Live queue states (fluxqueue.units.state, migrations/0002_queue.sql); terminal ones are counters' business.
# Each is always reported, so an emptied phase shows 0 rather than disappearing.
QUEUE_PHASES = ("Waiting", "Held", "Queued", "Reserved", "Scheduled", "Running", "Preempted")

# Submit -> bound spans sub-second (idle cluster) to hours (a deep HPC queue).
SCHEDULING_LATENCY_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
)
# A Fluxion match is sub-millisecond on small graphs and seconds at 16K nodes (flux-sched#1171).
MATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PASS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Admission must stay far below the webhook timeout (chart default 5 s).
WEBHOOK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """All fluxqueue metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None, process: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            _process.ProcessCollector(registry=r)

        self.queue_length = Gauge(
            "queue_length", "Jobs in the queue by phase.", ["phase"], namespace=NAMESPACE, registry=r
        )
        for phase in QUEUE_PHASES:
            self.queue_length.labels(phase=phase)
        self.submissions = Counter(
            "submissions",
            "Scheduling units entered into the queue, by kind.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.scheduling_latency = Histogram(
            "scheduling_latency_seconds",
            "Time from submission (admission) until every pod of the unit was bound.",
            namespace=NAMESPACE,
            registry=r,
            buckets=SCHEDULING_LATENCY_BUCKETS,
        )
        self.match_duration = Histogram(
            "fluxion_match_duration_seconds",
            "Duration of one Fluxion Match call, by result status.",
            ["status"],
            namespace=NAMESPACE,
            registry=r,
            buckets=MATCH_BUCKETS,
        )
        self.binds = Counter("binds", "Pods bound to a node.", namespace=NAMESPACE, registry=r)
        self.cancels = Counter(
            "cancels",
            "Allocations released in Fluxion (job finished, failed or deleted).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.unsatisfiable = Counter(
            "unsatisfiable",
            "Units judged never satisfiable on this cluster.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.pass_duration = Histogram(
            "scheduling_pass_duration_seconds",
            "Duration of one scheduling pass over the queue.",
            namespace=NAMESPACE,
            registry=r,
            buckets=PASS_BUCKETS,
        )
        self.webhook_duration = Histogram(
            "webhook_request_duration_seconds",
            "Admission webhook request latency, by resource and outcome (mutated, skipped, error).",
            ["resource", "outcome"],
            namespace=NAMESPACE,
            registry=r,
            buckets=WEBHOOK_BUCKETS,
        )
        self.leader = Gauge(
            "leader", "1 while this replica holds the scheduling lease.", namespace=NAMESPACE, registry=r
        )
        self.certificate_expiry = Gauge(
            "webhook_certificate_expiry_timestamp_seconds",
            "When the served webhook certificate expires (Unix time); alert well before it.",
            namespace=NAMESPACE,
            registry=r,
        )

        # Tenant queues (fluxqueue.io Queue objects); set only while Queue objects exist.
        self.queue_usage = Gauge(
            "queue_usage",
            "What the units holding an allocation ask, per tenant queue and resource (cores, bytes, GPUs).",
            ["queue", "resource"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.queue_quota = Gauge(
            "queue_quota",
            "A tenant queue's guaranteed quota per resource (cores, bytes, GPUs).",
            ["queue", "resource"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.queue_units = Gauge(
            "queue_units",
            "Units of a tenant queue, running (holding an allocation) or pending.",
            ["queue", "state"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.queue_admitted_unplaced = Counter(
            "queue_admitted_unplaced",
            "Units their queue admitted that Fluxion could not place then (only under --queue-admission quota).",
            ["queue"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.queue_preemptions = Counter(
            "queue_preemptions",
            "Units evicted to make room for another, by the victim's queue, the cause (reclaim or priority) and "
            "what became of it (requeued: suspended and queued again; deleted: a pod or pod group).",
            ["queue", "cause", "outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.queue_share = Gauge(
            "queue_fair_share",
            "A tenant queue's fair-share value (dominant share above quota over weight; lower borrows first).",
            ["queue"],
            namespace=NAMESPACE,
            registry=r,
        )

    def set_queue_lengths(self, counts: dict[str, int]) -> None:
        """Set every phase at once; phases absent from ``counts`` are 0."""
        for phase in {*QUEUE_PHASES, *counts}:
            self.queue_length.labels(phase=phase).set(counts.get(phase, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics(process=True)

# A readiness check returns a bool, or (bool, reason); it may be async.
ReadyCheck = Callable[[], bool | tuple[bool, str] | Awaitable[bool | tuple[bool, str]]]


async def _evaluate(check: ReadyCheck | None) -> tuple[bool, str]:
    if check is None:
        return True, "ok"
    result = check()
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, tuple):
        return bool(result[0]), str(result[1])
    return bool(result), "ok" if result else "not ready"


def add_routes(
    app: web.Application,
    metrics: Metrics = METRICS,
    ready: ReadyCheck | None = None,
    alive: ReadyCheck | None = None,
) -> web.Application:
    """Mount ``GET /metrics``, ``/healthz`` (liveness) and ``/readyz`` (readiness) on ``app``."""

    async def metrics_handler(_request: web.Request) -> web.Response:
        body = metrics.exposition()
        # prometheus' content type carries parameters aiohttp will not take as content_type=.
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def probe(check: ReadyCheck | None):
        async def handler(_request: web.Request) -> web.Response:
            ok, reason = await _evaluate(check)
            return web.Response(status=200 if ok else 503, text=reason + "\n")

        return handler

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", probe(alive))
    app.router.add_get("/readyz", probe(ready))
    return app


def metrics_app(
    metrics: Metrics = METRICS, ready: ReadyCheck | None = None, alive: ReadyCheck | None = None
) -> web.Application:
    """A standalone aiohttp app serving /metrics, /healthz and /readyz (the chart's metrics/probe port)."""
    return add_routes(web.Application(), metrics, ready, alive)


async def serve_metrics(
    host: str = "0.0.0.0",
    port: int = 8080,
    metrics: Metrics = METRICS,
    ready: ReadyCheck | None = None,
    alive: ReadyCheck | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve /metrics, /healthz, /readyz on plain HTTP (the chart's `metrics` port, which the probes use).

    Returns the runner (``await runner.cleanup()`` to stop) and the bound port (``port=0`` picks one)."""
    runner = web.AppRunner(metrics_app(metrics, ready, alive), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = getattr(site, "_server", None)
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port
    return runner, bound
