"""The controller process: webhook server on every replica, and on the leader only: watches, the scheduling
loop, the wake-up listener and the reconcile sweep.

``Controller(settings)``; ``await ctl.start()``; ``await ctl.stop()``. ``fluxqueue sim up`` runs it
in-process; ``fluxqueue controller`` runs it as a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any

from fluxqueue.controller.actions import Actions
from fluxqueue.controller.context import Context
from fluxqueue.controller.crd import fluxjob_crd
from fluxqueue.controller.fluxjob import fluxjob_summary
from fluxqueue.controller.instruments import Instruments
from fluxqueue.controller.pods import UNIT_INDEX, unit_index
from fluxqueue.controller.reactor import Reactor
from fluxqueue.controller.scheduler import Scheduler
from fluxqueue.controller.settings import ControllerSettings
from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.kube.client import CRDS, FLUXJOBS, JOBS, NODES, PODS, PRIORITYCLASSES, APIError, KubeClient
from fluxqueue.kube.events import EventRecorder
from fluxqueue.kube.leader import LeaderElector, default_identity
from fluxqueue.kube.watch import Informer, stop_task, strip_managed_fields
from fluxqueue.log import get_logger
from fluxqueue.queue.migrate import migrate
from fluxqueue.queue.store import QueueStore
from fluxqueue.queues import QUEUES_API
from fluxqueue.queues.crd import queue_crd
from fluxqueue.runtime import freeze_heap
from fluxqueue.workloads.job import JobWorkload
from fluxqueue.workloads.registry import OBJECT_KINDS

# scheduler-plugins' coscheduling PodGroup (its spec.minMember sizes the pod groups labelled for it)
COSCHEDULING_PODGROUPS = ("scheduling.x-k8s.io", "v1alpha1", "podgroups")

log = get_logger(__name__)

SWEEP_SHARE_INVERSE = 20  # wait at least 20x the last sweep's duration: sweeps use at most 5% of the time
# ...but never more than this many sweep intervals: a sweep's wall time includes waiting for an event loop
# busy with a flood, and a safety net several minutes away leaves what an event missed stuck that long.
SWEEP_MAX_INTERVALS = 6


class Controller:
    def __init__(
        self,
        settings: ControllerSettings,
        *,
        metrics: Any = None,
        cert_manager: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.settings = settings
        self.identity = settings.identity or default_identity()
        self.metrics = metrics
        self.cert_manager = cert_manager
        self._ssl_context = ssl_context
        self.client: KubeClient | None = None
        self.store: QueueStore | None = None
        self.fluxion: Any = None
        self.ctx: Context | None = None
        self.scheduler: Scheduler | None = None
        self.reactor: Reactor | None = None
        self.elector: LeaderElector | None = None
        self.webhook: Any = None
        self._metrics_runner: Any = None
        self.metrics_port: int | None = None
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self.leading = asyncio.Event()

    @property
    def webhook_port(self) -> int | None:
        return self.webhook.port if self.webhook is not None else None

    async def start(self) -> None:
        s = self.settings.validate()
        self.client = await KubeClient.from_kubeconfig(s.kubeconfig, s.context, qps=s.qps, burst=s.burst)
        try:
            await migrate(s.dsn)
            self.store = await QueueStore.open(s.dsn, max_size=8)
        except OSError as exc:
            await self.client.close()
            raise ConfigError(f"cannot reach the database: {exc}") from exc
        from fluxqueue.fluxion.client import FluxionClient

        self.fluxion = FluxionClient(s.fluxion_address)
        await self._start_webhook()
        if s.metrics_port:
            from fluxqueue.metrics import METRICS, serve_metrics

            self._metrics_runner, self.metrics_port = await serve_metrics(
                s.metrics_host, s.metrics_port, self.metrics or METRICS, ready=lambda: True
            )
        self.elector = LeaderElector(
            self.client,
            s.namespace,
            s.lease_name,
            self.identity,
            lease_duration=s.lease_duration,
            renew_deadline=s.renew_deadline,
            retry_period=s.retry_period,
        )
        if s.leader_election:
            self._task = asyncio.create_task(self.elector.run(self._lead), name="fluxqueue-controller")
        else:
            self._task = asyncio.create_task(self._lead(), name="fluxqueue-controller")
        log.info(
            "controller started", identity=self.identity, strategy=s.strategy, webhook_port=self.webhook_port
        )

    async def _start_webhook(self) -> None:
        s = self.settings
        if s.webhook_port is None:
            return
        from fluxqueue.controller.webhook_thread import ThreadedWebhook
        from fluxqueue.webhook.config import WebhookConfig
        from fluxqueue.webhook.server import make_app

        context = self._ssl_context
        if context is None and s.webhook_cert_file:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(s.webhook_cert_file, s.webhook_key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load the webhook certificate: {exc}") from exc
        if context is None and self.cert_manager is None and s.manage_certs:
            from fluxqueue.certs.authority import ServingIdentity
            from fluxqueue.certs.manager import CertificateManager

            assert self.client is not None
            self.cert_manager = CertificateManager(
                self.client,
                namespace=s.namespace,
                secret_name=s.webhook_secret,
                webhook_configuration=s.webhook_configuration or None,
                identity=ServingIdentity.for_service(
                    s.webhook_service,
                    s.namespace,
                    extra_dns=s.webhook_extra_dns,
                    extra_ips=s.webhook_extra_ips,
                ),
                metrics=self.metrics,
            )
        if context is None and self.cert_manager is not None:
            await self.cert_manager.start()
            context = self.cert_manager.server_ssl_context
        config = WebhookConfig(
            namespace=s.namespace,
            extra_system_namespaces=tuple(s.skip_namespaces),
            default_duration=s.default_duration,
            priority_classes=dict(s.priority_classes),
        )
        app = make_app(config, metrics=self.metrics if self.metrics is not None else "default")
        # Its own thread and loop: admission latency independent of the controller's load.
        self.webhook = await ThreadedWebhook.start(app, s.webhook_host, s.webhook_port, ssl_context=context)

    async def _install_crd(self) -> None:
        """Create the FluxJob and Queue CRDs where they are missing (the chart installs them; the simulator and
        a bare controller do not). Each is read first: the chart's RBAC grants reading them, not creating."""
        assert self.client is not None
        for name, body, what in (
            (names.CRD_NAME, fluxjob_crd, "FluxJob"),
            (queue_crd()["metadata"]["name"], queue_crd, "Queue"),
        ):
            try:
                await self.client.get(CRDS, name)
                continue
            except APIError as exc:
                if exc.code != 404:
                    raise
            try:
                await self.client.create(CRDS, body())
                log.info("installed a CRD", kind=what)
            except APIError as exc2:
                if exc2.code != 409:
                    raise

    async def _served(self, key: tuple[str, str, str]) -> bool:
        """Whether the API server serves a resource (a workload kind's CRD may not be installed): kinds that
        are not served are not watched (a controller restarted after the CRD is installed watches them)."""
        assert self.client is not None
        try:
            await self.client.list(key, limit=1)
        except APIError as exc:
            if exc.code in (403, 404):
                log.info("workload kind not served; not watched", resource="/".join(key), code=exc.code)
                return False
            raise
        return True

    async def _lead(self) -> None:
        """Everything only the leader does; cancelled when leadership is lost."""
        s = self.settings
        assert self.client is not None and self.store is not None
        if s.install_crd:
            await self._install_crd()
        recorder = EventRecorder(self.client, component="fluxqueue", host=self.identity)
        ctx = Context(
            settings=s,
            client=self.client,
            store=self.store,
            fluxion=self.fluxion,
            actions=Actions(self.client, recorder),
            jobs=Informer(
                self.client,
                JOBS,
                label_selector=f"{names.LABEL_MANAGED}=true",
                transform=strip_managed_fields,
                queue_until_handler=True,
            ),
            pods=Informer(
                self.client,
                PODS,
                indexers={UNIT_INDEX: unit_index},
                transform=strip_managed_fields,
                queue_until_handler=True,
            ),
            nodes=Informer(self.client, NODES, transform=strip_managed_fields, queue_until_handler=True),
            # Whether each FluxJob exists (the sweep recreates a missing one) and its phase (the sweep rewrites
            # the status of an ended unit that still shows it live).
            fluxjobs=Informer(self.client, FLUXJOBS, transform=fluxjob_summary),
            priorityclasses=Informer(self.client, PRIORITYCLASSES),
            metrics=Instruments(self.metrics) if self.metrics is not None else None,
        )
        ctx.objects[JobWorkload.kind] = ctx.jobs
        for kind in OBJECT_KINDS:
            if kind.kind not in ctx.objects and await self._served(kind.api):
                ctx.objects[kind.kind] = Informer(
                    self.client,
                    kind.api,
                    label_selector=f"{names.LABEL_MANAGED}=true",
                    transform=strip_managed_fields,
                    queue_until_handler=True,
                )
        if await self._served(COSCHEDULING_PODGROUPS):
            ctx.coscheduling = Informer(self.client, COSCHEDULING_PODGROUPS, transform=strip_managed_fields)
        if await self._served(QUEUES_API):
            ctx.queues = Informer(self.client, QUEUES_API, lambda *_: ctx.wake("queue changed"))
        # Events name a FluxJob by uid; one created by an earlier run is known from the informer's cache.
        ctx.actions.fluxjob_lookup = ctx.fluxjobs.get
        self.ctx = ctx
        scheduler = self.scheduler = Scheduler(ctx)
        reactor = self.reactor = Reactor(ctx, scheduler)
        if ctx.metrics is not None:
            ctx.metrics.set_leader(True)
        await reactor.load()
        tasks: list[asyncio.Task] = []
        try:
            # Caches first (no handlers yet), so the first graph and sweep see the whole cluster.
            informers = [ctx.nodes, ctx.pods, *ctx.objects.values(), ctx.fluxjobs, ctx.priorityclasses]
            if ctx.coscheduling is not None:
                informers.append(ctx.coscheduling)
            if ctx.queues is not None:
                informers.append(ctx.queues)
            for inf in informers:
                tasks.append(asyncio.create_task(inf.run(), name=f"watch-{inf.key[2]}"))
            await asyncio.gather(*(inf.synced.wait() for inf in informers))
            await scheduler.graphs.ensure()  # re-Init Fluxion and replay what the database holds
            await reactor.sweep()  # finish, release or adopt whatever happened while nobody led
            freeze_heap()  # the caches just listed live long: keep them out of every later collection
            ctx.nodes.handler = reactor.on_node
            ctx.pods.handler = reactor.on_pod_event
            for kind_name, informer in ctx.objects.items():
                informer.handler = reactor.workload_handler(kind_name)
            stop_listen = asyncio.Event()
            tasks.append(asyncio.create_task(scheduler.run(), name="scheduling-loop"))
            tasks.append(asyncio.create_task(self._sweep_loop(), name="sweep"))
            tasks.append(
                asyncio.create_task(
                    self.store.listen(lambda _p: ctx.wake("notify"), stop=stop_listen), name="listen"
                )
            )
            ctx.wake("leader")
            self.leading.set()
            await asyncio.gather(*tasks)
        finally:
            self.leading.clear()
            if ctx.metrics is not None:
                ctx.metrics.set_leader(False)
            for t in tasks:
                await stop_task(t)
            await reactor.drain()
            await scheduler.drain()

    async def _sweep_loop(self) -> None:
        assert self.reactor is not None
        pause = self.settings.sweep_interval
        while True:
            await asyncio.sleep(pause)
            started = time.monotonic()
            try:
                await self.reactor.sweep(settle=self.settings.sweep_interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed")
            # The sweep is a safety net that reads every active unit: with tens of thousands of them it may
            # take a second, and it should never use more than a few percent of the controller.
            took = time.monotonic() - started
            interval = self.settings.sweep_interval
            pause = min(SWEEP_MAX_INTERVALS * interval, max(interval, SWEEP_SHARE_INVERSE * took))
            log.info("sweep", seconds=round(took, 3), next_in=round(pause, 1))

    async def stop(self, *, release_lease: bool = True) -> None:
        await stop_task(self._task)
        self._task = None
        if release_lease and self.elector is not None and self.settings.leader_election:
            with contextlib.suppress(Exception):
                await self.elector.release()
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        if self.cert_manager is not None:
            with contextlib.suppress(Exception):
                await self.cert_manager.stop()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        if self.fluxion is not None:
            with contextlib.suppress(Exception):
                await self.fluxion.close()
        if self.store is not None:
            await self.store.close()
        if self.client is not None:
            await self.client.close()
        log.info("controller stopped", identity=self.identity)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()
