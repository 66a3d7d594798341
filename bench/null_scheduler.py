#!/usr/bin/env python3
"""The cheapest scheduler outside the API server: binds every unbound pod of one namespace round-robin.

No webhook, no queue, no database, no Fluxion: it lists the nodes, watches the namespace's pods and POSTs a
Binding for each unbound one, through fluxqueue's own API client (keep-alive HTTPS, the controller's
connection pool). bench/emulator_ceiling.py runs it in a child process (``via="process"``) to measure what
the emulator allows any scheduler that, like a real one, is not inside the API server: the floor under
fluxqueue's end-to-end rate that the in-process ceiling does not show.

    python bench/null_scheduler.py --kubeconfig sim.kubeconfig --namespace ceiling-1a2b3c
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxqueue.kube.client import NODES, PODS, APIError, KubeClient, binding_body

BINDERS = 32  # bindings in flight


async def run(kubeconfig: str, namespace: str) -> None:
    client = await KubeClient.from_kubeconfig(kubeconfig, qps=1e6, burst=1_000_000)
    try:
        nodes = sorted(n["metadata"]["name"] for n in (await client.list(NODES))["items"])
        if not nodes:
            raise SystemExit("null scheduler: the cluster has no nodes")
        next_node = itertools.cycle(nodes).__next__
        todo: asyncio.Queue[str] = asyncio.Queue()
        seen: set[str] = set()

        def consider(pod: dict) -> None:
            name = pod["metadata"]["name"]
            if name not in seen and not (pod.get("spec") or {}).get("nodeName"):
                seen.add(name)
                todo.put_nowait(name)

        async def binder() -> None:
            while True:
                name = await todo.get()
                try:
                    await client.create(
                        PODS,
                        binding_body(name, next_node()),
                        namespace=namespace,
                        name=name,
                        subresource="binding",
                    )
                except APIError as exc:
                    if exc.code not in (404, 409):  # deleted, or bound meanwhile
                        raise

        listing = await client.list(PODS, namespace=namespace)
        for pod in listing["items"]:
            consider(pod)
        binders = [asyncio.create_task(binder()) for _ in range(BINDERS)]
        print("ready", flush=True)
        rv = listing["metadata"]["resourceVersion"]
        while True:
            async for event in client.watch(PODS, namespace=namespace, resource_version=rv):
                obj = event["object"]
                rv = obj["metadata"].get("resourceVersion") or rv
                if event["type"] in ("ADDED", "MODIFIED"):
                    consider(obj)
            if any(b.done() for b in binders):
                for b in binders:
                    if b.done():
                        b.result()  # a binder failed: say why
    finally:
        await client.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", required=True)
    args = p.parse_args()
    asyncio.run(run(args.kubeconfig, args.namespace))


if __name__ == "__main__":
    main()
