"""Admission webhook latency: POST /mutate over HTTPS with keep-alive, for Pod and Job reviews.

The server runs in its own process (as in a cluster, where the API server is the client), serving with a
certificate from fluxqueue.certs; the client sends reviews one at a time on one kept-alive connection (what
the API server does per webhook call) and, separately, from several concurrent connections. Latency is
measured at the client, so it includes TLS, HTTP and JSON on both sides. Target: p99 < 10 ms.

    python bench/webhook_bench.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import json
import multiprocessing
import ssl
import statistics
import time

import aiohttp

from fluxqueue.certs.authority import ServingIdentity, make_ca, make_serving_cert
from fluxqueue.certs.tls import context_from_pem
from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.webhook.mutate import mutate
from fluxqueue.webhook.server import make_app, serve


def pod_review(i: int) -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"pod-{i}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "team-a",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "worker-",
                    "namespace": "team-a",
                    "labels": {"app": "sim", "fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "4"},
                    "annotations": {"fluxqueue.io/duration": "30m"},
                },
                "spec": {
                    "schedulerName": "default-scheduler",
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "ghcr.io/example/solver:1.2",
                            "command": ["solver", "--input", "/data/in"],
                            "resources": {
                                "requests": {"cpu": "2", "memory": "4Gi"},
                                "limits": {"memory": "4Gi"},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
                    ],
                },
            },
        },
    }


def job_review(i: int) -> dict:
    pod = pod_review(i)["request"]["object"]
    template = {"metadata": {"labels": {"app": "sim"}}, "spec": copy.deepcopy(pod["spec"])}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"job-{i}",
            "kind": {"group": "batch", "version": "v1", "kind": "Job"},
            "resource": {"group": "batch", "version": "v1", "resource": "jobs"},
            "operation": "CREATE",
            "namespace": "team-a",
            "object": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": f"train-{i}",
                    "namespace": "team-a",
                    "labels": {"fluxqueue.io/duration": "3600"},
                },
                "spec": {
                    "parallelism": 8,
                    "completions": 8,
                    "completionMode": "Indexed",
                    "backoffLimit": 0,
                    "suspend": False,
                    "template": template,
                },
            },
        },
    }


def _serve_forever(cert_pem: bytes, key_pem: bytes, port_queue) -> None:
    async def main() -> None:
        running = await serve(
            make_app(WebhookConfig(), metrics=None), "127.0.0.1", 0, context_from_pem(cert_pem, key_pem)
        )
        port_queue.put(running.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, client_ctx: ssl.SSLContext, make, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(ssl=client_ctx, limit=concurrency, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        bodies = [json.dumps(make(i)).encode() for i in range(n)]
        headers = {"Content-Type": "application/json"}

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                payload = await r.read()
            latencies.append(time.perf_counter() - started)
            assert r.status == 200 and b'"allowed":true' in payload, payload[:200]

        for body in bodies[:50]:  # warm-up: handshakes, first-call costs
            await one(body)
        latencies.clear()
        queue = list(bodies)

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def pure_cost(make, n: int) -> float:
    config = WebhookConfig()
    reviews = [make(i) for i in range(n)]
    started = time.perf_counter()
    for r in reviews:
        mutate(r, config)
    return (time.perf_counter() - started) / n


async def run(args) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_cert, ca_key = make_ca(now, dt.timedelta(days=1))
    cert, key = make_serving_cert(
        ca_cert,
        ca_key,
        ServingIdentity(dns_names=("localhost",), ip_addresses=("127.0.0.1",)),
        now,
        dt.timedelta(days=1),
    )
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_serve_forever, args=(cert, key, ports), daemon=True)
    proc.start()
    try:
        port = ports.get(timeout=30)
        url = f"https://127.0.0.1:{port}/mutate"
        client_ctx = ssl.create_default_context(cadata=ca_cert.decode())
        print(f"webhook bench: {args.requests} requests per case, server in its own process, TLS, keep-alive")
        print(f"{'case':<28} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8}")
        for name, make in (("Pod CREATE", pod_review), ("Job CREATE", job_review)):
            for conc in (1, args.concurrency):
                started = time.perf_counter()
                lat = await measure(url, client_ctx, make, args.requests, conc)
                wall = time.perf_counter() - started
                ms = [x * 1000 for x in lat]
                print(
                    f"{name + f' (conc {conc})':<28} {statistics.median(ms):8.3f} {percentile(ms, 0.9):8.3f} "
                    f"{percentile(ms, 0.99):8.3f} {max(ms):8.3f} {len(ms) / wall:8.0f}"
                )
        for name, make in (("Pod", pod_review), ("Job", job_review)):
            print(f"pure mutate() {name}: {pure_cost(make, 2000) * 1e6:.1f} us per review")
    finally:
        proc.terminate()
        proc.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
