"""`fluxqueue controller`: the webhook and, on the leader, the scheduling loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from fluxqueue.controller.settings import POLICIES, STRATEGIES, ControllerSettings
from fluxqueue.errors import ConfigError


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "controller",
        help="run the fluxqueue controller (admission webhook + leader-elected scheduling loop)",
        description=(
            "Serve the mutating webhook and, on the replica holding the Lease, watch Jobs/Pods/Nodes, queue units "
            "in PostgreSQL, place them with Fluxion, bind their pods and release them when they finish. "
            "Every flag has an environment variable (FLUXQUEUE_<FLAG>)."
        ),
    )
    p.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG"),
        help="kubeconfig file, or a KUBECONFIG-style list of them (default: in-cluster)",
    )
    p.add_argument(
        "--context",
        default=_env("FLUXQUEUE_CONTEXT"),
        help="the kubeconfig context to use instead of its current-context (env FLUXQUEUE_CONTEXT)",
    )
    p.add_argument("--dsn", default=_env("FLUXQUEUE_DSN"), help="PostgreSQL DSN (env FLUXQUEUE_DSN)")
    p.add_argument("--fluxion-address", default=_env("FLUXQUEUE_FLUXION_ADDRESS", "127.0.0.1:4242"))
    p.add_argument("--strategy", default=_env("FLUXQUEUE_STRATEGY", "easy"), help="|".join(STRATEGIES))
    p.add_argument(
        "--policy",
        default=_env("FLUXQUEUE_POLICY", "first"),
        help="Fluxion match policy: "
        + ", ".join(POLICIES)
        + ", or a custom string ('policy=high node_centric=true')",
    )
    p.add_argument(
        "--namespace", default=_env("FLUXQUEUE_NAMESPACE", _env("POD_NAMESPACE", "fluxqueue-system"))
    )
    p.add_argument(
        "--skip-namespaces",
        default=_env("FLUXQUEUE_SKIP_NAMESPACES", ""),
        help="comma-separated namespaces fluxqueue leaves alone (besides kube-* and its own)",
    )
    p.add_argument("--webhook-host", default=_env("FLUXQUEUE_WEBHOOK_HOST", "0.0.0.0"))
    p.add_argument(
        "--webhook-port",
        type=int,
        default=int(_env("FLUXQUEUE_WEBHOOK_PORT", "9443")),
        help="HTTPS port of the admission webhook (-1: do not serve it)",
    )
    p.add_argument(
        "--webhook-cert", default=_env("FLUXQUEUE_WEBHOOK_CERT"), help="serving certificate (PEM file)"
    )
    p.add_argument("--webhook-key", default=_env("FLUXQUEUE_WEBHOOK_KEY"), help="serving key (PEM file)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("FLUXQUEUE_METRICS_PORT", "8080")),
        help="plain-HTTP /metrics, /healthz, /readyz (0: off)",
    )
    p.add_argument(
        "--qps", type=float, default=_float_env("FLUXQUEUE_QPS", 500.0), help="API client requests/s"
    )
    p.add_argument(
        "--burst", type=int, default=int(_float_env("FLUXQUEUE_BURST", 1000)), help="API client burst"
    )
    p.add_argument(
        "--default-duration",
        type=int,
        default=int(_float_env("FLUXQUEUE_DEFAULT_DURATION", 3600)),
        help="walltime (s) when a workload gives none",
    )
    p.add_argument(
        "--queue-half-life",
        type=float,
        default=_float_env("FLUXQUEUE_QUEUE_HALF_LIFE", 3600.0),
        help="seconds over which tenant queues' past usage halves in fair share (0: no memory)",
    )
    p.add_argument(
        "--queue-admission",
        default=_env("FLUXQUEUE_QUEUE_ADMISSION", "nodes"),
        help="nodes: a unit holds its queue's quota once placed on nodes (default); quota: as soon as the "
        "quota arithmetic allows, placeable or not (Kueue's admission, for comparison)",
    )
    p.add_argument(
        "--group-timeout",
        type=float,
        default=_float_env("FLUXQUEUE_GROUP_TIMEOUT", 300.0),
        help="seconds a pod group may wait for its members (0: forever)",
    )
    p.add_argument(
        "--memory-chunk",
        type=int,
        default=int(_float_env("FLUXQUEUE_MEMORY_CHUNK", 2**30)),
        help="bytes per memory vertex in the graph",
    )
    p.add_argument(
        "--priority-classes",
        default=_env("FLUXQUEUE_PRIORITY_CLASSES", "{}"),
        help='JSON map of PriorityClass name -> value, e.g. {"high": 1000}',
    )
    p.add_argument(
        "--no-leader-election",
        dest="leader_elect",
        action="store_false",
        help="run the loop without a Lease (one replica only)",
    )
    # The flags the Helm chart renders (chart/templates/controller-deployment.yaml).
    p.add_argument(
        "--leader-elect",
        dest="leader_elect",
        action="store_true",
        default=True,
        help="hold a Lease (default)",
    )
    p.add_argument("--lease-name", default=_env("FLUXQUEUE_LEASE_NAME", "fluxqueue-scheduler"))
    p.add_argument("--lease-duration", type=float, default=_float_env("FLUXQUEUE_LEASE_DURATION", 15.0))
    p.add_argument("--renew-deadline", type=float, default=_float_env("FLUXQUEUE_RENEW_DEADLINE", 10.0))
    p.add_argument("--retry-period", type=float, default=_float_env("FLUXQUEUE_RETRY_PERIOD", 2.0))
    p.add_argument(
        "--metrics-host",
        default=_env("FLUXQUEUE_METRICS_HOST", "0.0.0.0"),
        help="address of /metrics and probes",
    )
    p.add_argument(
        "--queue-depth",
        type=int,
        default=int(_float_env("FLUXQUEUE_QUEUE_DEPTH", 64)),
        help="units matched per scheduling pass at most (0: all)",
    )
    try:
        from fluxqueue.certs.options import add_arguments as add_cert_arguments

        add_cert_arguments(p)
    except ImportError:  # pragma: no cover - certs is part of the package
        pass
    p.set_defaults(func=_run)


def settings_from_args(args: argparse.Namespace) -> ControllerSettings:
    try:
        classes = json.loads(args.priority_classes or "{}")
        if not isinstance(classes, dict):
            raise ValueError
    except ValueError as exc:
        raise ConfigError("--priority-classes must be a JSON object of name -> integer") from exc
    return ControllerSettings(
        kubeconfig=args.kubeconfig,
        context=args.context,
        dsn=args.dsn or "",
        fluxion_address=args.fluxion_address,
        strategy=args.strategy,
        policy=args.policy,
        namespace=args.namespace,
        skip_namespaces=tuple(n for n in (args.skip_namespaces or "").split(",") if n),
        webhook_host=args.webhook_host,
        webhook_port=None if args.webhook_port < 0 else args.webhook_port,
        webhook_cert_file=args.webhook_cert,
        webhook_key_file=args.webhook_key,
        metrics_port=args.metrics_port,
        qps=args.qps,
        burst=args.burst,
        default_duration=args.default_duration,
        queue_half_life=args.queue_half_life,
        queue_admission=args.queue_admission,
        group_timeout=args.group_timeout,
        memory_chunk=args.memory_chunk,
        metrics_host=args.metrics_host,
        queue_depth=args.queue_depth,
        leader_election=args.leader_elect,
        lease_name=args.lease_name,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
        priority_classes={str(k): int(v) for k, v in classes.items()},
    ).validate()


async def _run(args: argparse.Namespace) -> int:
    from fluxqueue.controller.app import Controller
    from fluxqueue.metrics import METRICS

    settings = settings_from_args(args)
    cert_manager = None
    if settings.webhook_port is not None and not settings.webhook_cert_file:
        from fluxqueue.certs.options import manager_from_args
        from fluxqueue.kube.client import KubeClient

        cert_client = await KubeClient.from_kubeconfig(
            settings.kubeconfig, settings.context, qps=settings.qps, burst=settings.burst
        )
        cert_manager = manager_from_args(args, cert_client, settings.namespace, metrics=METRICS)
    ctl = Controller(settings, metrics=METRICS, cert_manager=cert_manager)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctl.request_stop)
    await ctl.run_forever()
    return 0
