"""The whole fluxqueue system on one machine, as one async context manager.

``SimSystem`` starts, in order: an embedded PostgreSQL (and the queue migrations), the Fluxion service, the
Kubernetes API emulator with its simulated nodes, kubelets and workload controllers, the FluxJob CRD and the
MutatingWebhookConfiguration the Helm chart renders (``fluxqueue.sim.chartrender``, checked against
``helm template``: the simulation registers exactly what production registers), then the real controller
(webhook server, watchers, scheduling loop), with the chart's command lines.
It stops them in reverse order. ``fluxqueue sim up``, ``fluxqueue sim run``, the tests and the scale
benchmark all use it.

The controller reaches the emulator over HTTPS with a kubeconfig, as it would a real cluster; the chart's
webhook Service is mapped to the controller's local webhook port with ``APIServer.register_service``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.log import get_logger
from fluxqueue.runtime import tune_gc

log = get_logger(__name__)

SYSTEM_NAMESPACE = "fluxqueue-system"
DATABASE = "fluxqueue"

# gRPC's C core logs (at info) every fork() made while its threads run: PostgreSQL's pg_ctl is one.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@dataclass
class SimConfig:
    nodes: int = 16
    cpus: int = 32
    memory: str = "128Gi"
    gpus: int = 0
    racks: int = 4
    zones: int = 1
    pods_per_node: int = 110
    time_scale: float = 1.0
    strategy: str = "easy"
    policy: str = "first"
    kubeconfig: Path | None = None  # where to write the kubeconfig (a temp file when None)
    workdir: Path | None = None  # PostgreSQL data and logs (a temp dir when None)
    api_port: int = 0
    # Run the controller and Fluxion as their own processes (as in production; uses both cores and lets the
    # benchmark report each component's memory) instead of inside this process.
    processes: bool = False
    controller_qps: float = 1000.0
    controller_burst: int = 2000
    pass_interval: float | None = 1.0  # the controller's periodic safety pass (wall seconds)
    log_level: str = "warning"
    extra_controller_settings: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> SimConfig:
        if self.nodes < 1:
            raise ConfigError(f"--nodes must be >= 1, got {self.nodes}")
        if self.cpus < 1:
            raise ConfigError(f"--cpus must be >= 1, got {self.cpus}")
        if self.time_scale <= 0:
            raise ConfigError(f"--time-scale must be > 0, got {self.time_scale}")
        if self.racks < 1:
            raise ConfigError(f"--racks must be >= 1, got {self.racks}")
        return self


def _free_port() -> int:
    from fluxqueue.sim.postgres import free_port

    return free_port()


class SimSystem:
    """``async with SimSystem(SimConfig(...)) as system:`` — everything running; ``system.api.client`` and
    ``system.cluster`` for the simulation, ``system.kubeconfig`` for kubectl."""

    def __init__(self, config: SimConfig, before_scheduler: Any = None) -> None:
        """``before_scheduler``: an async callable given this system once the emulator and its cluster run but
        before the webhook and controller exist (the benchmark measures the emulator's raw ceiling there)."""
        self.config = config.validate()
        self.before_scheduler = before_scheduler
        self.postgres = None
        self.dsn: str | None = None
        self.fluxion = None
        self.fluxion_address: str | None = None
        self.api = None
        self.cluster = None
        self.controller = None
        self.kubeconfig: Path | None = None
        self.webhook_port: int | None = None
        self.metrics_port: int | None = None
        self.fluxion_port: int | None = None
        self.metrics: Any = None
        self.match_seconds: list[float] = []
        self.manifests: list[dict] = []  # what the chart registers: the CRDs, the webhook configuration
        self.containers: dict[str, dict] = {}  # the chart's controller and fluxion containers (args, env)
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._tmp: Path | None = None
        self._stack = contextlib.AsyncExitStack()
        self.timings: dict[str, float] = {}

    async def __aenter__(self) -> SimSystem:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def workdir(self) -> Path:
        if self.config.workdir is not None:
            self.config.workdir.mkdir(parents=True, exist_ok=True)
            return self.config.workdir
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="fluxqueue-sim-"))
        return self._tmp

    def _step(self, name: str, started: float) -> None:
        self.timings[name] = time.monotonic() - started
        log.debug("sim step done", step=name, seconds=round(self.timings[name], 2))

    async def start(self) -> None:
        cfg = self.config
        tune_gc()  # this process holds the emulator's store and a thousand kubelets (see fluxqueue.runtime)
        t = time.monotonic()
        # Ports first: the chart renders them into the controller's and Fluxion's command lines.
        self.webhook_port = _free_port()
        self.metrics_port = _free_port()
        self.fluxion_port = _free_port()
        from fluxqueue.sim import chartrender

        values = self.chart_values()
        self.manifests = chartrender.registered_objects(values, namespace=SYSTEM_NAMESPACE)
        self.containers = {
            "controller": chartrender.controller_container(values, namespace=SYSTEM_NAMESPACE),
            "fluxion": chartrender.fluxion_container(values, namespace=SYSTEM_NAMESPACE),
        }
        self._step("render chart", t)

        t = time.monotonic()
        await self._start_postgres()
        self._step("postgres", t)

        t = time.monotonic()
        await self._start_fluxion()
        self._step("fluxion", t)

        t = time.monotonic()
        from fluxqueue.sim.apiserver import APIServer

        self.api = APIServer()
        await self.api.start(host="127.0.0.1", port=cfg.api_port)
        self.kubeconfig = self.api.write_kubeconfig(cfg.kubeconfig or self.workdir / "sim.kubeconfig")
        from fluxqueue.sim.cluster import ClusterSpec, SimCluster

        self.cluster = SimCluster(
            self.api,
            ClusterSpec(
                nodes=cfg.nodes,
                cpus=cfg.cpus,
                memory=cfg.memory,
                gpus=cfg.gpus,
                racks=cfg.racks,
                zones=cfg.zones,
                pods_per_node=cfg.pods_per_node,
            ),
            time_scale=cfg.time_scale,
        )
        await self.cluster.start()
        self._step("cluster", t)
        if self.before_scheduler is not None:
            t = time.monotonic()
            await self.before_scheduler(self)
            self._step("before scheduler", t)

        t = time.monotonic()
        await self._install_chart()
        self._step("chart", t)

        t = time.monotonic()
        await self._start_controller()
        await self._wait_webhook_ready()
        self._step("controller", t)

    # --- components --------------------------------------------------------------------------------------

    async def _start_postgres(self) -> None:
        from fluxqueue.queue.migrate import migrate
        from fluxqueue.sim.postgres import EmbeddedPostgres

        self.postgres = EmbeddedPostgres(datadir=None)
        # initdb and pg_ctl are blocking subprocess calls (seconds): keep them off the event loop.
        await asyncio.to_thread(self.postgres.start)
        import asyncpg

        conn = await asyncpg.connect(self.postgres.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
        self.dsn = self.postgres.dsn_for(DATABASE)
        await migrate(self.dsn)

    async def _start_fluxion(self) -> None:
        if self.config.processes:
            self.fluxion_address = f"127.0.0.1:{self.fluxion_port}"
            await self._spawn("fluxion", _chart_args(self.containers["fluxion"], {}), env={})
            await self._wait_port("127.0.0.1", self.fluxion_port, "fluxion", 60.0)
            return
        from fluxqueue.fluxion.server import FluxionServer

        self.fluxion = FluxionServer(host="127.0.0.1", port=0)
        await self.fluxion.start()
        self.fluxion_address = self.fluxion.address

    def chart_values(self) -> dict[str, Any]:
        from fluxqueue.sim.chartrender import sim_values

        values = sim_values()
        values["logFormat"] = "text"
        values["controller"] = {
            "strategy": self.config.strategy,
            "ports": {"webhook": self.webhook_port or 9443, "metrics": self.metrics_port or 8080},
            # The API client's rate limit is a deployment setting: the simulation's, in both modes.
            "qps": self.config.controller_qps,
            "burst": self.config.controller_burst,
        }
        values["fluxion"] = {"policy": self.config.policy, "port": self.fluxion_port or 4242}
        return values

    async def _install_chart(self) -> None:
        from fluxqueue.sim.apiserver import resources as R
        from fluxqueue.sim.chartrender import install

        client = self.api.client
        with contextlib.suppress(Exception):
            await client.create(
                R.NAMESPACES,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
            )
        await install(client, self.manifests)
        # The chart's webhook calls a Service; here that Service is the controller's local port.
        services = set()
        for mwc in (m for m in self.manifests if m["kind"] == "MutatingWebhookConfiguration"):
            for hook in mwc.get("webhooks") or []:
                svc = (hook.get("clientConfig") or {}).get("service")
                if svc:
                    services.add((svc["namespace"], svc["name"], int(svc.get("port", 443))))
        if not services:
            raise RuntimeError("the rendered chart has no webhook Service reference")
        for ns, name, port in services:
            self.api.register_service(ns, name, port, f"https://127.0.0.1:{self.webhook_port}")

    async def _start_controller(self) -> None:
        cfg = self.config
        env = {
            "POD_NAMESPACE": SYSTEM_NAMESPACE,
            "POD_NAME": "fluxqueue-controller-sim",
            "FLUXQUEUE_DSN": self.dsn or "",
        }
        chart_args = _chart_args(self.containers["controller"], env)
        if cfg.processes:
            # The chart's own command line, plus what only exists outside a pod: the kubeconfig.
            args = _accepted_args([*chart_args, "--kubeconfig", str(self.kubeconfig)])
            await self._spawn("controller", args, env=env)
            await self._wait_port("127.0.0.1", self.webhook_port or 0, "controller", 90.0)
            return
        from fluxqueue.controller.app import Controller
        from fluxqueue.controller.settings import ControllerSettings
        from fluxqueue.metrics import Metrics

        # In this process: the settings the chart's flags name (certificate Secret, webhook configuration and
        # Service, lease), with the addresses that exist only here.
        flags = _flag_values(chart_args)
        settings: dict[str, Any] = dict(
            kubeconfig=str(self.kubeconfig),
            dsn=self.dsn,
            fluxion_address=self.fluxion_address,
            strategy=cfg.strategy,
            policy=cfg.policy,
            namespace=SYSTEM_NAMESPACE,
            webhook_host="127.0.0.1",
            webhook_port=self.webhook_port,
            manage_certs=True,
            qps=cfg.controller_qps,
            burst=cfg.controller_burst,
            install_crd=False,
        )
        for flag, key, convert in (
            ("--webhook-service", "webhook_service", str),
            ("--webhook-configuration", "webhook_configuration", str),
            ("--webhook-secret", "webhook_secret", str),
            ("--webhook-extra-ip", "webhook_extra_ips", tuple),
            ("--webhook-extra-dns", "webhook_extra_dns", tuple),
            ("--lease-name", "lease_name", str),
            ("--default-duration", "default_duration", int),
        ):
            if flag in flags:
                values = flags[flag]
                settings[key] = tuple(values) if convert is tuple else convert(values[-1])
        if cfg.pass_interval is not None:
            settings["pass_interval"] = cfg.pass_interval
        settings.update(cfg.extra_controller_settings)
        known = set(ControllerSettings.__dataclass_fields__)
        self.metrics = Metrics()
        self.controller = Controller(
            ControllerSettings(**{k: v for k, v in settings.items() if k in known}), metrics=self.metrics
        )
        await self.controller.start()
        self._time_matches(self.controller.fluxion)
        await asyncio.wait_for(self.controller.leading.wait(), 60)

    def _time_matches(self, client: Any) -> None:
        """Record each Match round trip the controller makes (client side, gRPC included), for the report's
        match latency when the controller's own histogram has no samples."""
        if client is None or not hasattr(client, "match"):
            return
        inner = client.match
        samples = self.match_seconds

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                samples.append(time.perf_counter() - started)

        client.match = timed

    async def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log_path = self.workdir / f"{name}.log"
        log_file = log_path.open("ab")
        argv = [sys.executable, "-m", "fluxqueue", "--log-level", self.config.log_level, *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, env={**os.environ, **env}, stdout=log_file, stderr=log_file, start_new_session=True
        )
        log_file.close()
        self.processes[name] = proc
        log.debug("started component", component=name, pid=proc.pid, log=str(log_path))

    async def _wait_port(self, host: str, port: int, what: str, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            proc = self.processes.get(what)
            if proc is not None and proc.returncode is not None:
                raise RuntimeError(
                    f"{what} exited with status {proc.returncode}; see {self.workdir}/{what}.log"
                )
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{what} did not listen on {host}:{port} within {limit:.0f} s")

    async def _wait_webhook_ready(self, limit: float = 90.0) -> None:
        """Until the chart's webhook holds a pod (CA injected, controller serving): the chart's failurePolicy
        is Ignore, so work submitted earlier would slip past the queue unnoticed."""
        from fluxqueue.sim.apiserver import resources as R

        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "fluxqueue-sim-readiness-probe", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        deadline = time.monotonic() + limit
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.returncode is not None:
                    raise RuntimeError(
                        f"{name} exited with status {proc.returncode}; see {self.workdir}/{name}.log"
                    )
            try:
                pod = await self.api.client.create(R.PODS, probe, namespace="default", dry_run=True)
                gates = [g.get("name") for g in (pod.get("spec") or {}).get("schedulingGates") or []]
                if names.SCHEDULING_GATE in gates:
                    return
                last = "the webhook did not gate a probe pod yet"
            except Exception as exc:  # the API refusing the probe is also "not ready yet"
                last = str(exc)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the fluxqueue webhook did not become ready within {limit:.0f} s: {last}")

    # --- shutdown ----------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Reverse order; every step runs even when an earlier one fails."""
        steps = []
        if self.controller is not None:
            steps.append(("controller", self.controller.stop()))
        for name in ("controller", "fluxion"):
            proc = self.processes.get(name)
            if proc is not None:
                steps.append((name, _terminate(proc)))
        if self.cluster is not None:
            steps.append(("cluster", self.cluster.stop()))
        if self.api is not None:
            steps.append(("apiserver", self.api.stop()))
        if self.fluxion is not None:
            steps.append(("fluxion", self.fluxion.stop()))
        for name, coro in steps:
            try:
                await asyncio.wait_for(coro, 30)
            except Exception as exc:
                log.warning("component did not stop cleanly", component=name, error=str(exc))
        self.controller = self.cluster = self.api = self.fluxion = None
        self.processes.clear()
        if self.postgres is not None:
            pg, self.postgres = self.postgres, None
            try:
                await asyncio.to_thread(pg.stop)
            except Exception as exc:
                log.warning("postgres did not stop cleanly", error=str(exc))
        if self._tmp is not None and self.config.workdir is None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # --- what a person needs -----------------------------------------------------------------------------

    def usage_text(self) -> str:
        cfg = self.config
        shape = f"{cfg.nodes} nodes x {cfg.cpus} CPUs, {cfg.memory}"
        if cfg.gpus:
            shape += f", {cfg.gpus} GPUs"
        lines = [
            f"fluxqueue simulation is up: {shape}, {cfg.racks} racks, time scale {cfg.time_scale:g}x, "
            f"strategy {cfg.strategy}, policy {cfg.policy}",
            f"  Kubernetes API:  {self.api.url}",
            f"  kubectl:         kubectl --kubeconfig {self.kubeconfig} get fj,jobs,pods -A",
            f"  queue database:  {self.postgres.psql_command(DATABASE)}" if self.postgres else "",
            f"  Fluxion:         {self.fluxion_address}",
            "  try:            kubectl --kubeconfig "
            f"{self.kubeconfig} create job hello --image=busybox -- sleep 10",
            "Press Ctrl-C to stop everything.",
        ]
        return "\n".join(line for line in lines if line)


def _accepted_args(args: list[str]) -> list[str]:
    """``args`` minus flags the installed CLI does not accept (the chart and the CLI are released together, but
    a checkout in the middle of a change may disagree); each dropped flag is logged, never silently lost."""
    import argparse

    from fluxqueue.cli import build_parser

    parser = build_parser()
    try:
        _, unknown = parser.parse_known_args(args)
    except SystemExit:
        return args
    except argparse.ArgumentError:
        return args
    if unknown:
        log.warning(
            "the chart renders flags this controller does not accept; dropped", flags=" ".join(unknown)
        )
    drop = set(unknown)
    return [a for a in args if a not in drop]


def _flag_values(args: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in args:
        if a.startswith("--") and "=" in a:
            flag, _, value = a.partition("=")
            out.setdefault(flag, []).append(value)
    return out


def _chart_args(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The container's args with Kubernetes' $(VAR) expansion, minus the log flags (set by the harness)."""
    for e in container.get("env") or []:
        if "value" in e:
            env.setdefault(e["name"], str(e["value"]))
    args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in container["args"]]
    return [a for a in args if not a.startswith(("--log-level", "--log-format"))]


async def _terminate(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
