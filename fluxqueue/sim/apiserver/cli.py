"""`fluxqueue sim apiserver`: the API emulator plus a simulated cluster, standalone until interrupted.

fluxqueue sim apiserver --nodes 16 --cpus 32 --memory 128Gi --kubeconfig /tmp/sim.kubeconfig
KUBECONFIG=/tmp/sim.kubeconfig kubectl get nodes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from fluxqueue.errors import ConfigError
from fluxqueue.kube.quantity import QuantityError, parse_quantity


def register(sim_subparsers: argparse._SubParsersAction) -> None:
    p = sim_subparsers.add_parser(
        "apiserver",
        help="run the Kubernetes API emulator with simulated nodes, kubelets and controllers",
        description=(
            "Serve a Kubernetes API (HTTPS with its own CA, or plain HTTP) backed by a simulated cluster: "
            "nodes with kubelets that run bound pods for their sim.fluxqueue.io/runtime, and the Job, "
            "ReplicaSet, ReplicationController, Deployment, StatefulSet, DaemonSet, garbage-collector and TTL "
            "controllers. Runs until Ctrl-C."
        ),
    )
    p.add_argument("--nodes", type=int, default=16, help="number of nodes (named node-000, node-001, ...)")
    p.add_argument("--cpus", type=int, default=32, help="CPUs per node")
    p.add_argument("--memory", default="128Gi", help="memory per node (a Kubernetes quantity)")
    p.add_argument("--gpus", type=int, default=0, help="nvidia.com/gpu per node")
    p.add_argument("--pods-per-node", type=int, default=110, help="pods allocatable per node")
    p.add_argument("--racks", type=int, default=4, help="racks (label fluxqueue.io/rack), contiguous blocks")
    p.add_argument("--zones", type=int, default=1, help="zones (label topology.kubernetes.io/zone)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per real second (60: pod run times, delays and heartbeats run 60x faster)",
    )
    p.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig for kubectl/helm")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    p.add_argument("--insecure-http", action="store_true", help="serve plain HTTP instead of HTTPS")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> Path:
    """Validate the flags; the kubeconfig path, resolved."""
    if args.nodes < 0 or args.cpus <= 0 or args.gpus < 0 or args.pods_per_node <= 0:
        raise ConfigError("--nodes, --gpus must be >= 0 and --cpus, --pods-per-node > 0")
    if args.racks <= 0 or args.zones <= 0:
        raise ConfigError("--racks and --zones must be > 0")
    if args.time_scale <= 0:
        raise ConfigError("--time-scale must be > 0")
    try:
        if parse_quantity(args.memory) <= 0:
            raise ConfigError(f"--memory must be positive, got {args.memory!r}")
    except QuantityError as exc:
        raise ConfigError(f"--memory: {exc}") from exc
    return Path(args.kubeconfig).expanduser().resolve()


async def run(args: argparse.Namespace) -> int:
    kubeconfig = _check(args)
    from fluxqueue.sim.apiserver import APIServer
    from fluxqueue.sim.cluster import ClusterSpec, SimCluster

    api = APIServer(tls=not args.insecure_http, time_scale=args.time_scale)
    try:
        await api.start(host=args.host, port=args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    api.write_kubeconfig(kubeconfig)
    cluster = SimCluster(
        api,
        ClusterSpec(
            nodes=args.nodes,
            cpus=args.cpus,
            memory=args.memory,
            gpus=args.gpus,
            racks=args.racks,
            zones=args.zones,
            pods_per_node=args.pods_per_node,
        ),
        time_scale=args.time_scale,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.start()
        print(
            f"fluxqueue sim apiserver: {api.url} with {args.nodes} nodes "
            f"({args.cpus} CPUs, {args.memory}, {args.gpus} GPUs each), time scale {args.time_scale:g}\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            f"  kubectl get nodes\n"
            f"Pods bound to a node run for their sim.fluxqueue.io/runtime annotation (default 10s). Ctrl-C stops.",
            flush=True,
        )
        await stop.wait()
    finally:
        await cluster.stop()
        await api.stop()
    return 0
