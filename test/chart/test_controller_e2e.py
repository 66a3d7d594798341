"""The chart's configuration, run for real: `helm install` into the API emulator, then the controller process
started with exactly the args and env of the rendered Deployment (plus a kubeconfig, as it runs outside a
pod). The webhook the chart registered must intercept a Job: certificates made by the controller, the CA
injected by it, TLS verified by the emulator. The Job is then placed and its pods bound on simulated nodes,
and every API request the controller made must be granted by the chart's RBAC."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from rbac import access_of, allowed  # test/chart/rbac.py (pytest puts this directory on sys.path)
from support.clitools import run_tool
from support.helm import CHART_DIR, controller_container, of_kind, render_chart

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.chartrender import sim_values

NS = "fluxqueue-system"
pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of container args (dependent environment variables)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


async def helm(tools, kubeconfig: Path, *args: str) -> str:
    return (await run_tool(tools.helm, *args, kubeconfig=kubeconfig, limit_s=120)).stdout


async def helm_install(tools, kubeconfig: Path, values: dict) -> None:
    """``helm install fluxqueue`` of the chart into NS with these values."""
    values_file = kubeconfig.parent / "values.json"
    values_file.write_text(json.dumps(values))
    await helm(
        tools,
        kubeconfig,
        "install",
        "fluxqueue",
        str(CHART_DIR),
        "-n",
        NS,
        "--create-namespace",
        "-f",
        str(values_file),
    )


READY_WITHIN = 60.0


async def wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = asyncio.get_running_loop().time() + READY_WITHIN
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            assert proc.returncode is None, "controller exited"
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("controller never became ready")


async def wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        assert proc.returncode is None, "fluxion exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("fluxion never listened")


async def start_fluxion(manifests: list[dict], port: int) -> asyncio.subprocess.Process:
    """Fluxion as the rendered sidecar runs it (the same image, another subcommand), listening on ``port``."""
    pod = of_kind(manifests, "Deployment")[0]["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["initContainers"] if c["name"] == "fluxion")
    fluxion = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluxqueue",
        *sidecar["args"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_listening(port, fluxion)
    except BaseException:
        await stop_process(fluxion)
        raise
    return fluxion


async def stop_process(p: asyncio.subprocess.Process | None) -> None:
    if p is not None and p.returncode is None:
        p.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await p.wait()
        except TimeoutError:
            p.kill()
            await p.wait()


class RecordingProxy:
    """A plain-HTTP reverse proxy in front of the emulator that records every request the controller makes,
    so the test can check each against the chart's RBAC (the emulator authorizes every token as admin)."""

    def __init__(self, upstream: str, ca_pem: bytes):
        self.upstream = upstream
        self.ssl = ssl.create_default_context(cadata=ca_pem.decode())
        self.seen: list[tuple[str, str]] = []

    async def start(self) -> str:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def forward(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, str(request.rel_url)))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self.session.request(
            request.method,
            self.upstream + str(request.rel_url),
            headers=headers,
            data=await request.read(),
            ssl=self.ssl,
            timeout=aiohttp.ClientTimeout(total=None),
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for k, v in upstream.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    response.headers[k] = v
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass
            return response

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()


async def test_controller_started_from_the_rendered_deployment_intercepts_a_job(
    tools, migrated_dsn, tmp_path
):
    api = APIServer()
    await api.start()
    proxy = RecordingProxy(api.url, api.ca_pem)
    proxy_url = await proxy.start()
    from fluxqueue.sim.cluster import ClusterSpec, SimCluster

    # Two simulated nodes with kubelets and a Job controller, so the Job is placed, bound and run.
    cluster = SimCluster(api, ClusterSpec(nodes=2, cpus=4, memory="8Gi", racks=1, default_runtime=2.0))
    await cluster.start()
    proc = fluxion = None
    try:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        # The controller talks through the recording proxy; helm and the test talk to the emulator directly.
        controller_kubeconfig = tmp_path / "controller.kubeconfig"
        config = api.kubeconfig()
        config["clusters"][0]["cluster"] = {"server": proxy_url}
        controller_kubeconfig.write_text(yaml.safe_dump(config))
        webhook_port, metrics_port, fluxion_port = free_port(), free_port(), free_port()
        values = sim_values()
        values.update(
            logFormat="text",
            controller={"ports": {"webhook": webhook_port, "metrics": metrics_port}},
            fluxion={"port": fluxion_port},
        )
        await helm_install(tools, kubeconfig, values)
        await api.client.create(
            R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
        )
        webhook = await api.client.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
        assert not any(h["clientConfig"].get("caBundle") for h in webhook["webhooks"])

        manifests = await render_chart(values, namespace=NS, helm=str(tools.helm))
        fluxion = await start_fluxion(manifests, fluxion_port)

        container = controller_container(manifests)
        env = {"POD_NAMESPACE": NS, "POD_NAME": "fluxqueue-controller-0", "FLUXQUEUE_DSN": migrated_dsn}
        rendered_env = {e["name"] for e in container["env"]}
        assert rendered_env == set(env), "every env var of the Deployment is provided here"
        args = [expand(a, env) for a in container["args"]]
        # The one addition: outside a pod there is no in-cluster config.
        args += ["--kubeconfig", str(controller_kubeconfig)]
        api.register_service(NS, "fluxqueue-webhook", 443, f"https://127.0.0.1:{webhook_port}")

        log_file = (tmp_path / "controller.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fluxqueue",
            *args,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        await wait_ready(metrics_port, proc)

        secret = await api.client.get(R.SECRETS, "fluxqueue-webhook-tls", namespace=NS)
        bundle = secret["data"]["ca-bundle.crt"]
        webhook = await api.client.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
        assert [h["clientConfig"].get("caBundle") for h in webhook["webhooks"]] == [bundle] * len(
            webhook["webhooks"]
        )
        assert b"BEGIN CERTIFICATE" in base64.b64decode(bundle)

        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "hello", "namespace": "team-a"},
            "spec": {
                "parallelism": 2,
                "completions": 2,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
                            }
                        ],
                    }
                },
            },
        }
        created = await api.client.create(R.JOBS, job, namespace="team-a")
        assert created["spec"]["suspend"] is True
        assert created["spec"]["template"]["spec"]["schedulerName"] == names.SCHEDULER_NAME

        # The rest of the rendered configuration works too (DSN, Fluxion address, Lease): the controller
        # records the Job as a FluxJob.
        for _ in range(300):
            if (await api.client.list(R.FLUXJOBS, namespace="team-a"))["items"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no FluxJob recorded for the intercepted Job")

        # ... places it with Fluxion, unsuspends it and binds its pods (pods/binding) to the simulated nodes.
        for _ in range(300):
            pods = (await api.client.list(R.PODS, namespace="team-a"))["items"]
            if len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the Job's pods were not bound: {pods}")

        # Every request the controller made is granted by the chart's RBAC to the chart's ServiceAccount.
        accesses = {a for m, u in proxy.seen if (a := access_of(m, u)) is not None}
        assert {a.resource for a in accesses} >= {
            "secrets",
            "mutatingwebhookconfigurations",
            "leases",
            "jobs",
        }
        denied = sorted(str(a) for a in accesses if not allowed(a, manifests, "fluxqueue", NS))
        assert not denied, f"the chart's RBAC does not grant: {denied}"
        # helm upgrade re-applies the webhook configuration without a caBundle; the injected one must survive
        # (three-way merge / server-side apply leave a field helm never set alone).
        await helm(
            tools,
            kubeconfig,
            "upgrade",
            "fluxqueue",
            str(CHART_DIR),
            "-n",
            NS,
            "--reuse-values",
            "--set",
            "webhook.timeoutSeconds=3",
        )
        webhook = await api.client.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
        assert {h["timeoutSeconds"] for h in webhook["webhooks"]} == {3}
        assert [h["clientConfig"].get("caBundle") for h in webhook["webhooks"]] == [bundle] * len(
            webhook["webhooks"]
        )
        created = await api.client.create(
            R.JOBS, {**job, "metadata": {"name": "after-upgrade"}}, namespace="team-a"
        )
        assert created["spec"]["suspend"] is True

        print("controller API accesses:", *sorted(str(a) for a in accesses), sep="\n  ")
    finally:
        for p in (proc, fluxion):
            await stop_process(p)
        await proxy.stop()
        await cluster.stop()
        await api.stop()
        log = tmp_path / "controller.log"
        if log.exists():
            print(log.read_text()[-8000:])  # shown by pytest when the test fails


async def test_two_replicas_share_one_certificate_and_one_leader(tools, migrated_dsn, tmp_path):
    """controller.replicas=2: both replicas serve the webhook with the one shared certificate; one holds the
    Lease, and when it stops the other takes over."""
    api = APIServer()
    await api.start()
    processes: list[asyncio.subprocess.Process] = []
    replicas: list[dict] = []
    try:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        base = sim_values()
        base["controller"] = {"replicas": 2}
        await helm_install(tools, kubeconfig, base)
        await api.client.create(
            R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
        )
        # Each replica is a pod of its own: here, its own ports (a pod IP each, in a cluster).
        for i in range(2):
            ports = {"webhook": free_port(), "metrics": free_port(), "fluxion": free_port()}
            values = {
                **base,
                "logFormat": "text",
                "controller": {
                    "replicas": 2,
                    "ports": {"webhook": ports["webhook"], "metrics": ports["metrics"]},
                },
                "fluxion": {"port": ports["fluxion"]},
            }
            manifests = await render_chart(values, namespace=NS, helm=str(tools.helm))
            env = {
                "POD_NAMESPACE": NS,
                "POD_NAME": f"fluxqueue-controller-{i}",
                "FLUXQUEUE_DSN": migrated_dsn,
            }
            processes.append(await start_fluxion(manifests, ports["fluxion"]))
            args = [expand(a, env) for a in controller_container(manifests)["args"]]
            ctl = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fluxqueue",
                *args,
                "--kubeconfig",
                str(kubeconfig),
                env={**os.environ, **env},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=(tmp_path / f"controller-{i}.log").open("wb"),
            )
            processes.append(ctl)
            replicas.append({"proc": ctl, **ports})
        for r in replicas:
            await wait_ready(r["metrics"], r["proc"])

        secret = await api.client.get(R.SECRETS, "fluxqueue-webhook-tls", namespace=NS)
        webhook = await api.client.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
        assert {h["clientConfig"]["caBundle"] for h in webhook["webhooks"]} == {
            secret["data"]["ca-bundle.crt"]
        }

        # The Service may route to either replica: both admit with a certificate the injected CA verifies.
        for i, r in enumerate(replicas):
            api.register_service(NS, "fluxqueue-webhook", 443, f"https://127.0.0.1:{r['webhook']}")
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": f"via-replica-{i}", "namespace": "team-a"},
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
                    }
                },
            }
            created = await api.client.create(R.JOBS, job, namespace="team-a")
            assert created["spec"]["suspend"] is True, f"replica {i} did not admit"

        # Exactly one replica leads (its fluxqueue_leader gauge is 1); stopping it hands the Lease over.
        async def leading(r: dict) -> bool:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{r['metrics']}/metrics") as resp:
                    return "fluxqueue_leader 1.0" in await resp.text()

        async def wait_for_leaders(candidates: list[dict]) -> list[dict]:
            for _ in range(300):
                leaders = [r for r in candidates if await leading(r)]
                if leaders:
                    return leaders
                await asyncio.sleep(0.1)
            raise AssertionError("no replica leads")

        leaders = await wait_for_leaders(replicas)
        assert len(leaders) == 1
        old = leaders[0]
        survivor = next(r for r in replicas if r is not old)
        holder = (await api.client.get(R.LEASES, "fluxqueue-controller", namespace=NS))["spec"][
            "holderIdentity"
        ]
        await stop_process(old["proc"])  # SIGTERM: the leader releases the Lease on the way out
        assert await wait_for_leaders([survivor]) == [survivor]
        lease = await api.client.get(R.LEASES, "fluxqueue-controller", namespace=NS)
        assert lease["spec"]["holderIdentity"] not in ("", holder)
    finally:
        for p in processes:
            await stop_process(p)
        await api.stop()
