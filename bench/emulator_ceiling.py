"""The emulator's ceiling: create pod + bind + run to completion with no scheduler and no webhook (pods/s).

Pods are created unbound (spec.nodeName unset), bound by this benchmark through pods/binding round-robin over
the nodes, and run by the simulated kubelets with ``sim.fluxqueue.io/runtime: 0s``; the rate is the number
of pods over the time from the first create to the last Succeeded. fluxqueue's end-to-end rate is measured
against this figure (bench/scale_bench.py calls :func:`measure_ceiling` in the same run).

    python bench/emulator_ceiling.py                    # 1,000 and 5,000 nodes, in-process and HTTP
    python bench/emulator_ceiling.py --nodes 1000 --pods 5000 --via http
    python bench/emulator_ceiling.py --nodes 1000 --via process   # bound by bench/null_scheduler.py over HTTPS
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import ssl
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxqueue.kube import names
from fluxqueue.kube.client import binding_body
from fluxqueue.sim.apiserver import APIError, APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.cluster import ClusterSpec, SimCluster


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {names.SIM_RUNTIME: "0s"}},
        "spec": {
            "schedulerName": "emulator-ceiling",  # no scheduler serves it: this benchmark binds
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


async def measure_ceiling(
    api: APIServer, cluster: SimCluster, pods: int, via: str = "inproc", concurrency: int | None = None
) -> float:
    """Pods/s for create + bind + complete through ``api`` on ``cluster`` (``via`` "inproc" or "http")."""
    ns = "ceiling-" + uuid.uuid4().hex[:6]
    client = api.client
    await client.create(R.NAMESPACES, {"metadata": {"name": ns}})
    nodes = sorted(cluster.kubelets.nodes) if cluster.kubelets else []
    if not nodes:
        raise RuntimeError("the cluster has no nodes")
    done = asyncio.Event()
    finished: set[str] = set()

    def on_pod(typ: str, old: Any, new: Any) -> None:
        if new is None or new["metadata"].get("namespace") != ns:
            return
        if (new.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            finished.add(new["metadata"]["name"])
            if len(finished) >= pods:
                done.set()

    informer = cluster.informer(R.PODS)
    informer.add_handler(on_pod)
    names_ = [f"p-{i}" for i in range(pods)]
    node_cycle = itertools.cycle(nodes)
    assignment = {n: next(node_cycle) for n in names_}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for n in names_:
        queue.put_nowait(n)
    scheduler = await _start_null_scheduler(api, ns) if via == "process" else None
    t0 = time.perf_counter()
    try:
        if via == "process":
            # Created here as the end-to-end run creates its pods; bound by the null scheduler over HTTPS.
            async def creator() -> None:
                while not queue.empty():
                    await client.create(R.PODS, _pod(queue.get_nowait()), namespace=ns)

            await asyncio.gather(*(creator() for _ in range(concurrency or 32)))
        elif via == "inproc":

            async def worker() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    await client.create(R.PODS, _pod(n), namespace=ns)
                    await client.create(
                        R.PODS, binding_body(n, assignment[n]), namespace=ns, subresource="binding"
                    )

            await asyncio.gather(*(worker() for _ in range(concurrency or 32)))
        else:
            await _http_load(api, ns, queue, assignment, concurrency or 8)
        await asyncio.wait_for(done.wait(), timeout=max(120.0, pods / 20))
    finally:
        informer.remove_handler(on_pod)
        if scheduler is not None:
            scheduler.kill()
            await scheduler.wait()
    elapsed = time.perf_counter() - t0
    try:
        await client.delete(R.NAMESPACES, ns)
    except APIError:
        pass
    return pods / elapsed


async def _start_null_scheduler(api: APIServer, ns: str) -> asyncio.subprocess.Process:
    """bench/null_scheduler.py in a child process, watching ``ns``; returns once it has listed."""
    path = getattr(api, "kubeconfig_path", None)
    if path is None:
        import tempfile

        path = api.write_kubeconfig(Path(tempfile.mkdtemp(prefix="ceiling-")) / "kubeconfig")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("null_scheduler.py")),
        "--kubeconfig",
        str(path),
        "--namespace",
        ns,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"the null scheduler did not start (said {line!r})")
    return proc


async def _http_load(
    api: APIServer, ns: str, queue: asyncio.Queue[str], assignment: dict[str, str], connections: int
) -> None:
    import aiohttp

    ssl_ctx: ssl.SSLContext | bool = False
    if api.ca_pem:
        ssl_ctx = ssl.create_default_context(cadata=api.ca_pem.decode())
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    base = f"{api.url}/api/v1/namespaces/{ns}/pods"
    conn = aiohttp.TCPConnector(limit=connections, ssl=ssl_ctx)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                async with session.post(base, data=json.dumps(_pod(n))) as r:
                    if r.status >= 300:
                        raise RuntimeError(f"create {n}: {r.status} {await r.text()}")
                async with session.post(
                    f"{base}/{n}/binding", data=json.dumps(binding_body(n, assignment[n]))
                ) as r:
                    if r.status >= 300:
                        raise RuntimeError(f"bind {n}: {r.status} {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(connections)))


async def run_case(nodes: int, pods: int, via: str) -> dict[str, Any]:
    api = APIServer()
    await api.start()
    cluster = SimCluster(
        api, ClusterSpec(nodes=nodes, racks=max(1, nodes // 50), events=False), time_scale=1.0
    )
    t = time.perf_counter()
    await cluster.start()
    startup = time.perf_counter() - t
    try:
        rate = await measure_ceiling(api, cluster, pods, via=via)
    finally:
        await cluster.stop()
        await api.stop()
    return {
        "nodes": nodes,
        "pods": pods,
        "via": via,
        "pods_per_s": round(rate, 1),
        "startup_s": round(startup, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, nargs="*", default=[1000, 5000])
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--via", choices=["inproc", "http", "process", "both"], default="both")
    args = p.parse_args()
    vias = ["inproc", "http"] if args.via == "both" else [args.via]
    for n in args.nodes:
        for via in vias:
            r = asyncio.run(run_case(n, args.pods, via))
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
