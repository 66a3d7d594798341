"""The whole system for end-to-end tests: API emulator + simulated cluster + real PostgreSQL + in-process
Fluxion + the real Controller talking HTTP, users submitting with the real kubectl.

Every test that uses ``system`` gets the shared invariant check after its body (test/support/invariants.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.invariants import PodTimeline, check_invariants
from support.polling import Budget

from fluxqueue.controller.app import Controller
from fluxqueue.controller.settings import ControllerSettings
from fluxqueue.fluxion.server import FluxionServer
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.cluster import ClusterSpec, SimCluster

SYSTEM_NS = "fluxqueue-system"
TIME_SCALE = 20.0  # simulated seconds per wall second: a 10 s pod runs for half a second

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def webhook_manifests() -> list[dict]:
    """The chart's MutatingWebhookConfiguration (what helm renders: test/chart/test_chartrender.py)."""
    from fluxqueue.sim.chartrender import sim_values, webhook_configuration

    return [webhook_configuration(sim_values(), namespace=SYSTEM_NS)]


class FluxJobHistory:
    """Every version of every FluxJob, in the order the API server stored them, watched from before the first
    one exists: a phase a FluxJob holds for a moment (a short job is Running for a tenth of a second here) is
    seen even when no poll falls inside it."""

    def __init__(self, api: APIServer):
        self.api = api
        self.versions: dict[tuple[str, str], list[dict]] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> FluxJobHistory:
        self._task = asyncio.create_task(self._run(), name="fluxjob-history")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def of(self, name: str, namespace: str = "default") -> list[dict]:
        return self.versions.get((namespace, name), [])

    def _observe(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        seen = self.versions.setdefault(key, [])
        if seen and seen[-1]["metadata"].get("uid") != meta.get("uid"):
            seen.clear()  # a FluxJob of that name made later starts a history of its own
        # A deleted FluxJob keeps its history: one owned by its pods (a pod group) is collected as soon as they
        # are deleted, and a phase it held just before (Cancelled, Failed) must still be seen.
        if kind != "DELETED":
            seen.append(obj)

    async def _run(self) -> None:
        client = self.api.client
        rv = None
        while True:
            try:
                if rv is None:
                    listing = await client.list(R.FLUXJOBS)  # 404 until the controller installs the CRD
                    for obj in listing["items"]:
                        self._observe("MODIFIED", obj)
                    rv = listing["metadata"]["resourceVersion"]
                async for ev in client.watch(R.FLUXJOBS, resource_version=rv):
                    obj = ev.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._observe(ev["type"], obj)
            except asyncio.CancelledError:
                raise
            except Exception:
                rv = None
                await asyncio.sleep(0.05)


class System:
    def __init__(self, tmp: Path, dsn: str, tools: Any, webhooks: list[dict], spec: ClusterSpec):
        self.tmp = tmp
        self.dsn = dsn
        self.tools = tools
        self.webhooks = webhooks
        self.spec = spec
        self.api: APIServer | None = None
        self.cluster: SimCluster | None = None
        self.fluxion: FluxionServer | None = None
        self.controller: Controller | None = None
        self.timeline: PodTimeline | None = None
        self.history: FluxJobHistory | None = None
        self.webhook_port = free_port()
        self.kubeconfig = tmp / "kubeconfig"
        self.controller_overrides: dict[str, Any] = {}

    async def start(self) -> None:
        self.api = APIServer()
        await self.api.start(host="127.0.0.1", port=0)
        self.api.write_kubeconfig(self.kubeconfig)
        self.cluster = SimCluster(self.api, self.spec, time_scale=TIME_SCALE)
        await self.cluster.start()
        self.timeline = await PodTimeline(self.api).start()
        self.history = FluxJobHistory(self.api).start()
        await self.api.client.create(
            R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}}
        )
        for mwc in self.webhooks:
            await self.api.client.create(R.MUTATING_WEBHOOKS, json.loads(json.dumps(mwc)))
            for hook in mwc["webhooks"]:
                svc = hook["clientConfig"]["service"]
                self.api.register_service(
                    svc["namespace"],
                    svc["name"],
                    int(svc.get("port", 443)),
                    f"https://127.0.0.1:{self.webhook_port}",
                )
        self.fluxion = FluxionServer(host="127.0.0.1", port=0)
        await self.fluxion.start()
        await self.start_controller()

    def settings(self, **overrides: Any) -> ControllerSettings:
        values: dict[str, Any] = dict(
            kubeconfig=str(self.kubeconfig),
            dsn=self.dsn,
            fluxion_address=self.fluxion.address,
            strategy="easy",
            namespace=SYSTEM_NS,
            webhook_host="127.0.0.1",
            webhook_port=self.webhook_port,
            manage_certs=True,
            webhook_extra_ips=("127.0.0.1",),
            pass_interval=1.0,
            sweep_interval=1.0,
            lease_duration=2.0,
            renew_deadline=1.5,
            retry_period=0.3,
            default_duration=60,
            time_scale=TIME_SCALE,
            time_resync=2.0,
        )
        values.update(self.controller_overrides)
        values.update(overrides)
        return ControllerSettings(**values)

    async def start_controller(self, wait_leading: bool = True, **overrides: Any) -> Controller:
        self.controller = Controller(self.settings(**overrides))
        await self.controller.start()
        if wait_leading:
            await asyncio.wait_for(self.controller.leading.wait(), 15)
        await self._wait_webhook()
        return self.controller

    async def _wait_webhook(self) -> None:
        """The CA is injected and the webhook answers through the API server (dry-run pod)."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "webhook-probe", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        }
        budget = Budget(30)
        while True:
            out = await self.api.client.create(R.PODS, pod, namespace="default", dry_run=True)
            if (out.get("spec") or {}).get("schedulerName") == "fluxqueue":
                return
            assert not budget.exhausted(), "the webhook never started mutating pods"
            await asyncio.sleep(0.1)

    async def restart_controller(self, **overrides: Any) -> Controller:
        """A clean restart (lease released) with other settings."""
        assert self.controller is not None
        await self.controller.stop()
        return await self.start_controller(**overrides)

    async def kill_controller(self) -> None:
        """Stop it as a crash would: no lease release, whatever it was doing is cut short."""
        assert self.controller is not None
        await self.controller.stop(release_lease=False)
        self.controller = None

    async def stop(self) -> None:
        if self.controller is not None:
            await self.controller.stop()
        if self.timeline is not None:
            await self.timeline.stop()
        if self.history is not None:
            await self.history.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.fluxion is not None:
            await self.fluxion.stop()
        if self.api is not None:
            await self.api.stop()

    # ---- what a user does ---------------------------------------------------------------------------

    async def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.tmp))
        proc = await asyncio.create_subprocess_exec(
            str(self.tools.kubectl),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 30)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {err.decode()}{out.decode()}")
        return out.decode()

    async def apply(self, manifest: str) -> str:
        return await self.kubectl("apply", "-f", "-", stdin=manifest)

    # ---- what a test looks at -----------------------------------------------------------------------

    async def fluxjob(self, name: str, namespace: str = "default") -> dict | None:
        try:
            return await self.api.client.get(R.FLUXJOBS, name, namespace=namespace)
        except Exception:
            return None

    async def phase(self, name: str, namespace: str = "default") -> str | None:
        fj = await self.fluxjob(name, namespace)
        return ((fj or {}).get("status") or {}).get("phase")

    async def wait_phase(self, name: str, phases: str | tuple[str, ...], within: float = 20) -> dict:
        """The first version of FluxJob ``name`` in one of ``phases``, looked for in its whole history: a
        phase it has already left counts (a job waited for as Running may be Succeeded by the next poll)."""
        wanted = (phases,) if isinstance(phases, str) else phases
        fj = None
        found = None

        async def reached() -> bool:
            nonlocal fj, found
            assert self.history is not None
            found = next(
                (v for v in self.history.of(name) if (v.get("status") or {}).get("phase") in wanted), None
            )
            if found is None:
                fj = await self.fluxjob(name)
                if ((fj or {}).get("status") or {}).get("phase") in wanted:
                    found = fj
            return found is not None

        try:
            await self.wait_for(reached, within, f"FluxJob {name} to reach {wanted}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {(fj or {}).get('status')}") from None
        assert found is not None
        return found

    async def wait_for(self, check: Callable[[], Any], within: float = 40, what: str = "condition") -> None:
        budget = Budget(within)
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            if budget.exhausted():
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    async def passes(self, n: int = 2, within: float = 30) -> None:
        """Wait until the leader has completed ``n`` more scheduling passes: the first may have begun before
        the caller's change, the others began after it and saw it. What a pass places is persisted before
        the pass ends, so a unit row without an allocation afterwards was not placed by them."""
        assert self.controller is not None and self.controller.scheduler is not None
        scheduler = self.controller.scheduler
        target = scheduler.passes + n
        await self.wait_for(lambda: scheduler.passes >= target, within, f"{n} more scheduling passes")

    async def sweeps(self, n: int = 1, within: float = 30) -> None:
        """Wait until the leader has completed ``n`` periodic sweeps begun after this call."""
        assert self.controller is not None and self.controller.reactor is not None
        reactor = self.controller.reactor
        sweep = reactor.sweep
        done = 0

        async def counted(*args: Any, **kwargs: Any) -> None:
            nonlocal done
            await sweep(*args, **kwargs)
            done += 1

        reactor.sweep = counted  # the sweep loop looks the method up on every round
        try:
            await self.wait_for(lambda: done >= n, within, f"{n} more sweeps")
        finally:
            del reactor.sweep

    async def pods(self, namespace: str = "default", selector: str | None = None) -> list[dict]:
        return (await self.api.client.list(R.PODS, namespace=namespace, label_selector=selector))["items"]

    async def events(self, name: str, namespace: str = "default") -> list[dict]:
        items = (await self.api.client.list(R.EVENTS, namespace=namespace))["items"]
        return [e for e in items if e["involvedObject"].get("name") == name]

    async def unit_row(self, name: str, namespace: str = "default") -> dict | None:
        conn = await asyncpg.connect(self.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT u.*, a.fluxion_jobid FROM fluxqueue.units u "
                "LEFT JOIN fluxqueue.allocations a ON a.unit_id = u.id "
                "WHERE u.namespace = $1 AND u.name = $2 ORDER BY u.id DESC LIMIT 1",
                namespace,
                name,
            )
            return dict(row) if row else None
        finally:
            await conn.close()

    async def scheduled_order(self) -> list[str]:
        """Unit names in the order they were scheduled (from the history)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT u.name FROM fluxqueue.state_changes c JOIN fluxqueue.units u ON u.id = c.unit_id "
                "WHERE c.to_state = 'Scheduled' ORDER BY c.id"
            )
            return [r["name"] for r in rows]
        finally:
            await conn.close()

    async def check_invariants(self) -> None:
        await check_invariants(self.api, self.cluster, self.dsn, self.timeline)


@pytest.fixture
def cluster_spec() -> ClusterSpec:
    """Override in a test module (or with indirect parametrisation) for another shape."""
    return ClusterSpec(nodes=4, cpus=4, memory="16Gi", racks=1, heartbeat_writes_per_s=20)


@pytest.fixture
async def system(tmp_path, migrated_dsn, tools, webhook_manifests, cluster_spec) -> AsyncIterator[System]:
    sys_ = System(tmp_path, migrated_dsn, tools, webhook_manifests, cluster_spec)
    try:
        await sys_.start()
        yield sys_
        await sys_.check_invariants()
    finally:
        await sys_.stop()
