"""CPU cost of the API emulator per request, by request kind (in-process client and HTTPS).

The emulator starts with N nodes (Node objects and their Leases, as the simulated kubelets register them;
no kubelet runs, so nothing but the measured requests uses the CPU) and the FluxJob CRD. Each round then
sends, for M pods of a fresh namespace, the requests the end-to-end benchmark is made of, one kind at a time
with ``--concurrency`` requests in flight, while ``--watchers`` watches on pods are open (and drained):

    create_pod        POST a gated pod (what the admission webhook lets through)
    gate_patch        JSON patch: test + remove the scheduling gate, add two annotations (controller)
    bind              POST pods/binding
    pod_status        merge patch of pods/status with a running status (kubelet: in process, without a copy
                      of the answer where the client offers it, as the simulated kubelets do)
    create_fluxjob    POST a FluxJob (controller)
    fluxjob_status    merge patch of fluxjobs/status (controller; twice per FluxJob: Queued, Scheduled)
    create_event      POST a core/v1 Event about a FluxJob (controller: "Scheduled")
    lease             merge patch of a node Lease's renewTime (kubelet heartbeat; no copy either)
    get_pod           GET a pod (reference point)

Reported per kind: microseconds of CPU of the emulator's process per request (``time.process_time``; for
HTTPS the emulator runs in a child process, so the client's own CPU is not counted, and reports its own)
and wall microseconds per request. Median over rounds (min in brackets).

    python bench/emulator_requests.py                          # both transports, 1,000 nodes, 1,000 pods
    python bench/emulator_requests.py --via inproc --rounds 5 --watchers 2
    py-spy record -r 200 -f raw -o out.txt -- python bench/emulator_requests.py --via inproc
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


from fluxqueue.controller.crd import fluxjob_crd
from fluxqueue.kube import names
from fluxqueue.kube.client import binding_body, resource_path
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.clock import rfc3339, rfc3339_micro
from fluxqueue.sim.cluster import node_names
from fluxqueue.sim.kubelet import (
    NODE_LEASE_NAMESPACE,
    NodeShape,
    host_ip,
    lease_object,
    node_object,
    running_status,
)

FLUXJOBS = (names.CRD_GROUP, names.CRD_VERSION, names.CRD_PLURAL)
KINDS = [
    "create_pod",
    "gate_patch",
    "bind",
    "pod_status",
    "create_fluxjob",
    "fluxjob_status",
    "create_event",
    "lease",
    "get_pod",
]

try:
    import orjson

    def _dumps(v: Any) -> bytes:
        return orjson.dumps(v)

    _loads = orjson.loads
except ImportError:  # pragma: no cover

    def _dumps(v: Any) -> bytes:
        return json.dumps(v).encode()

    _loads = json.loads


# ----------------------------------------------------------------------------------------- request bodies
def pod_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "fluxqueue.io/managed": "true"},
            "annotations": {names.SIM_RUNTIME: "30s"},
        },
        "spec": {
            "schedulerName": names.SCHEDULER_NAME,
            "restartPolicy": "Never",
            "schedulingGates": [{"name": names.SCHEDULING_GATE}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sleep", "30"],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                }
            ],
        },
    }


def gate_ops(i: int) -> list[dict[str, Any]]:
    return [
        {"op": "test", "path": "/spec/schedulingGates/0/name", "value": names.SCHEDULING_GATE},
        {"op": "remove", "path": "/spec/schedulingGates/0"},
        {"op": "add", "path": "/metadata/annotations/fluxqueue.io~1fluxjob", "value": f"fj-{i}"},
        {"op": "add", "path": "/metadata/annotations/fluxqueue.io~1fluxion-jobid", "value": str(i)},
    ]


def fluxjob_body(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{names.CRD_GROUP}/{names.CRD_VERSION}",
        "kind": names.CRD_KIND,
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {names.LABEL_MANAGED: "true"},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": name,
                    "uid": "00000000-0000-0000-0000-000000000000",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "wrapped": {"kind": "Pod", "name": name, "apiVersion": "v1"},
            "size": 1,
            "resources": {"cpu": "100m", "memory": "67108864", "gpus": 0},
            "duration": 30,
            "priority": 0,
            "exclusive": False,
            "queue": "default",
            "jobspec": "version: 9999\nresources:\n- type: slot\n  count: 1\n",
        },
    }


def event_body(name: str, ns: str, node: str) -> dict[str, Any]:
    """The Event the controller posts when a unit is placed (fluxqueue.kube.events.EventRecorder's shape)."""
    now = rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{os.urandom(8).hex()}", "namespace": ns},
        "involvedObject": {
            "apiVersion": f"{names.CRD_GROUP}/{names.CRD_VERSION}",
            "kind": names.CRD_KIND,
            "name": name,
            "namespace": ns,
            "uid": "00000000-0000-0000-0000-000000000001",
        },
        "reason": "Scheduled",
        "message": f"Scheduled on {node}",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "eventTime": None,
        "reportingComponent": "fluxqueue",
        "reportingInstance": "controller-0",
        "source": {"component": "fluxqueue", "host": "controller-0"},
    }


_OPTIONAL = ("queuePosition", "reservedStart", "members", "nodes", "nodeList", "fluxionJobID")


def fluxjob_status(i: int, scheduled: bool, node: str) -> dict[str, Any]:
    now = rfc3339()
    status: dict[str, Any] = {"phase": "Scheduled" if scheduled else "Queued", "reason": "in the queue"}
    conds = [{"type": "Queued", "status": "True", "reason": "Queued", "message": "in the queue"}]
    conds[0]["lastTransitionTime"] = now
    status["queuedAt"] = now
    if scheduled:
        status.update({"nodes": [node], "nodeList": node, "fluxionJobID": i, "scheduledAt": now})
        conds.append(
            {
                "type": "Scheduled",
                "status": "True",
                "reason": "Scheduled",
                "message": "placed by Fluxion",
                "lastTransitionTime": now,
            }
        )
    else:
        status["queuePosition"] = i
    status["conditions"] = conds
    return {"status": {**dict.fromkeys(_OPTIONAL), **status}}


def pod_status(pod_uid: str, node_index: int) -> dict[str, Any]:
    pod = {
        "metadata": {"uid": pod_uid},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
        "status": {"qosClass": "Guaranteed"},
    }
    ip = host_ip(node_index)
    return {"status": running_status(pod, ip, "10.244.0.7", rfc3339())}


def lease_patch(node: str) -> dict[str, Any]:
    return {"spec": {"renewTime": rfc3339_micro(), "holderIdentity": node}}


# ----------------------------------------------------------------------------------------- setup
async def setup(api: APIServer, nodes: int) -> None:
    """Nodes and Leases as kubelets register them, and the FluxJob CRD."""
    client = api.client
    sem = asyncio.Semaphore(64)

    async def one(i: int, name: str) -> None:
        async with sem:
            shape = NodeShape(name=name, index=i, rack=f"rack-{i // 50}")
            node = await client.create(R.NODES, node_object(shape))
            lease = lease_object(name, node["metadata"]["uid"], rfc3339_micro(), 40)
            await client.create(R.LEASES, lease, namespace=NODE_LEASE_NAMESPACE)

    await asyncio.gather(*(one(i, n) for i, n in enumerate(node_names(nodes))))
    await client.create(R.CRDS, fluxjob_crd())
    for _ in range(100):
        if api.engine.registry.get(FLUXJOBS) is not None:
            break
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------------------- transports
class Transport:
    """The requests of one kind, sent through the in-process client or over HTTPS."""

    async def create(self, key: tuple[str, str, str], body: Any, ns: str | None, sub: str | None = None):
        raise NotImplementedError

    async def patch(
        self,
        key,
        name: str,
        body: Any,
        ns: str | None,
        ptype: str,
        sub: str | None = None,
        shared: bool = False,
    ):
        raise NotImplementedError

    async def get(self, key, name: str, ns: str | None):
        raise NotImplementedError

    async def cpu(self) -> float:
        raise NotImplementedError


class InProc(Transport):
    def __init__(self, api: APIServer):
        self.client = api.client
        self.shared_ok = "copy" in inspect.signature(self.client.patch).parameters

    async def create(self, key, body, ns, sub=None):
        if sub:
            return await self.client.create(key, body, namespace=ns, subresource=sub)
        return await self.client.create(key, body, namespace=ns)

    async def patch(self, key, name, body, ns, ptype, sub=None, shared=False):
        if shared and self.shared_ok:
            # what the simulated kubelets do: take the stored object, no copy (Client.patch(copy=False))
            return await self.client.patch(
                key, name, body, namespace=ns, patch_type=ptype, subresource=sub, copy=False
            )
        return await self.client.patch(key, name, body, namespace=ns, patch_type=ptype, subresource=sub)

    async def get(self, key, name, ns):
        return await self.client.get(key, name, namespace=ns)

    async def cpu(self) -> float:
        return time.process_time()


_CTYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class HTTPS(Transport):
    def __init__(self, url: str, token: str, ca_pem: str | None, server: Any, connections: int):
        import aiohttp

        self.url = url
        self.server = server  # the emulator's process: answers its CPU time when asked (serve())
        ssl_ctx: Any = ssl.create_default_context(cadata=ca_pem) if ca_pem else False
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ssl=ssl_ctx),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "emulator-requests/0"},
        )

    async def close(self) -> None:
        await self.session.close()

    async def _call(self, method: str, path: str, body: Any, ctype: str) -> Any:
        data = _dumps(body) if body is not None else None
        async with self.session.request(
            method, self.url + path, data=data, headers={"Content-Type": ctype}
        ) as r:
            raw = await r.read()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
            return _loads(raw)

    async def create(self, key, body, ns, sub=None):
        name = body["metadata"]["name"] if sub else None
        return await self._call("POST", resource_path(key, ns, name, sub), body, "application/json")

    async def patch(self, key, name, body, ns, ptype, sub=None, shared=False):
        return await self._call("PATCH", resource_path(key, ns, name, sub), body, _CTYPES[ptype])

    async def get(self, key, name, ns):
        return await self._call("GET", resource_path(key, ns, name), None, "application/json")

    async def cpu(self) -> float:
        # the emulator's own process_time: to the nanosecond, where /proc's utime+stime count 10 ms ticks
        self.server.stdin.write(b"cpu\n")
        return float(json.loads(await self.server.stdout.readline())["cpu"])


# ----------------------------------------------------------------------------------------- watchers
async def inproc_watcher(api: APIServer, counter: list[int]) -> None:
    """An informer's watch on every pod (the stored objects, as SimCluster's shared informers read them)."""
    stream = await api.engine.watch(R.PODS, None, str(api.engine.store.rv), None, None, True)
    try:
        async for _typ, _obj, _ev in stream:
            counter[0] += 1
    finally:
        await stream.aclose()


async def http_watcher(t: HTTPS, counter: list[int], ready: asyncio.Event) -> None:
    """A reflector's watch over HTTPS (one JSON line per event, decoded)."""
    async with t.session.get(
        t.url + "/api/v1/pods",
        params={"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": "1"},
        timeout=None,
    ) as r:
        ready.set()
        async for line in r.content:
            if line.strip():
                _loads(line)
                counter[0] += 1


# ----------------------------------------------------------------------------------------- the rounds
async def timed(
    t: Transport, n: int, concurrency: int, fn: Callable[[int], Awaitable[Any]]
) -> tuple[float, float]:
    """(CPU s, wall s) for fn(0..n-1) with ``concurrency`` in flight."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)

    await asyncio.sleep(0.05)  # let the previous phase's watch events drain
    c0, w0 = await t.cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    c1, w1 = await t.cpu(), time.perf_counter()
    return c1 - c0, w1 - w0


async def one_round(
    t: Transport, rnd: int, pods: int, nodes: list[str], concurrency: int
) -> dict[str, tuple[float, float, int]]:
    ns = f"bench-{os.getpid()}-{rnd}"
    await t.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, None)
    names_ = [f"p-{i}" for i in range(pods)]
    uids: dict[int, str] = {}
    out: dict[str, tuple[float, float, int]] = {}

    async def create_pod(i: int) -> None:
        obj = await t.create(R.PODS, pod_body(names_[i]), ns)
        uids[i] = obj["metadata"]["uid"]

    async def gate(i: int) -> None:
        await t.patch(R.PODS, names_[i], gate_ops(i), ns, "json")

    async def bind(i: int) -> None:
        await t.create(R.PODS, binding_body(names_[i], nodes[i % len(nodes)]), ns, "binding")

    async def status(i: int) -> None:
        body = pod_status(uids[i], i % len(nodes))
        await t.patch(R.PODS, names_[i], body, ns, "merge", "status", shared=True)

    async def create_fj(i: int) -> None:
        await t.create(FLUXJOBS, fluxjob_body(names_[i], ns), ns)

    async def fj_status(i: int) -> None:
        j = i % pods
        await t.patch(
            FLUXJOBS, names_[j], fluxjob_status(j, i >= pods, nodes[j % len(nodes)]), ns, "merge", "status"
        )

    async def create_event(i: int) -> None:
        await t.create(R.EVENTS, event_body(names_[i], ns, nodes[i % len(nodes)]), ns)

    async def lease(i: int) -> None:
        node = nodes[i % len(nodes)]
        await t.patch(R.LEASES, node, lease_patch(node), NODE_LEASE_NAMESPACE, "merge", shared=True)

    async def get(i: int) -> None:
        await t.get(R.PODS, names_[i], ns)

    phases: list[tuple[str, int, Callable[[int], Awaitable[Any]]]] = [
        ("create_pod", pods, create_pod),
        ("gate_patch", pods, gate),
        ("bind", pods, bind),
        ("pod_status", pods, status),
        ("create_fluxjob", pods, create_fj),
        ("fluxjob_status", 2 * pods, fj_status),
        ("create_event", pods, create_event),
        ("lease", pods, lease),
        ("get_pod", pods, get),
    ]
    for kind, n, fn in phases:
        cpu, wall = await timed(t, n, concurrency, fn)
        out[kind] = (cpu, wall, n)
    return out


def summarize(rounds: list[dict[str, tuple[float, float, int]]]) -> dict[str, dict[str, float]]:
    res = {}
    for kind in KINDS:
        cpu = [r[kind][0] / r[kind][2] * 1e6 for r in rounds]
        wall = [r[kind][1] / r[kind][2] * 1e6 for r in rounds]
        res[kind] = {
            "cpu_us": round(statistics.median(cpu), 1),
            "cpu_us_min": round(min(cpu), 1),
            "wall_us": round(statistics.median(wall), 1),
            "cpu_us_rounds": [round(c, 1) for c in cpu],
        }
    return res


async def run_inproc(args: argparse.Namespace) -> dict[str, Any]:
    api = APIServer(tls=True)
    await setup(api, args.nodes)
    counter = [0]
    tasks = [asyncio.create_task(inproc_watcher(api, counter)) for _ in range(args.watchers)]
    await asyncio.sleep(0)
    t = InProc(api)
    nodes = node_names(args.nodes)
    rounds = [await one_round(t, r, args.pods, nodes, args.concurrency) for r in range(args.rounds)]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await api.stop()
    return {"via": "inproc", "watch_events": counter[0], "per_request": summarize(rounds)}


async def run_https(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--serve", "--nodes", str(args.nodes), "--gc", args.gc]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = await proc.stdout.readline()
    info = json.loads(line)
    t = HTTPS(info["url"], info["token"], info["ca"], proc, args.concurrency + args.watchers)
    counter = [0]
    tasks = []
    try:
        for _ in range(args.watchers):
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(http_watcher(t, counter, ready)))
            await ready.wait()
        nodes = node_names(args.nodes)
        rounds = [await one_round(t, r, args.pods, nodes, args.concurrency) for r in range(args.rounds)]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await t.close()
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
    return {"via": "https", "watch_events": counter[0], "per_request": summarize(rounds)}


async def serve(args: argparse.Namespace) -> None:
    """The emulator alone (child process of an HTTPS run): prints how to reach it, then serves, answering
    each line on stdin with its CPU time so far, until stdin closes."""
    api = APIServer(tls=True)
    await api.start()
    await setup(api, args.nodes)
    info = {"url": api.url, "token": api.token, "ca": (api.ca_pem or b"").decode() or None}
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        sys.stdout.write(json.dumps({"cpu": time.process_time()}) + "\n")
        sys.stdout.flush()
    await api.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=1000, help="pods per round (each kind sends about this many)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--watchers", type=int, default=1, help="watches open on all pods")
    p.add_argument("--via", choices=["inproc", "https", "both"], default="both")
    p.add_argument(
        "--gc",
        choices=["tuned", "default"],
        default="tuned",
        help="tuned: fluxqueue.runtime.tune_gc() as the simulator's process does (default); default: CPython's",
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="one JSON line per transport instead of a table")
    args = p.parse_args()
    if args.gc == "tuned":
        try:
            from fluxqueue.runtime import tune_gc
        except ImportError:  # older trees
            gc.set_threshold(50_000, 20, 100)
        else:
            tune_gc()
    try:  # the event loop the simulator's process runs on (uvloop when installed)
        from fluxqueue.runtime import run
    except ImportError:  # older trees
        run = asyncio.run
    if args.serve:
        run(serve(args))
        return
    vias = ["inproc", "https"] if args.via == "both" else [args.via]
    for via in vias:
        res = run(run_inproc(args) if via == "inproc" else run_https(args))
        res.update(nodes=args.nodes, pods=args.pods, rounds=args.rounds, watchers=args.watchers, gc=args.gc)
        if args.json:
            print(json.dumps(res), flush=True)
            continue
        print(
            f"# {via}: {args.nodes} nodes, {args.pods} pods x {args.rounds} rounds, "
            f"{args.watchers} pod watcher(s), concurrency {args.concurrency}, {args.gc} GC; "
            "us per request, median [min]"
        )
        print(f"{'kind':16} {'cpu_us':>16} {'wall_us':>9}")
        for kind, v in res["per_request"].items():
            print(f"{kind:16} {v['cpu_us']:8.1f} [{v['cpu_us_min']:6.1f}] {v['wall_us']:9.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
