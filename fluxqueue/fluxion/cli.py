"""`fluxqueue fluxion serve`: run the Fluxion gRPC service."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from fluxqueue.errors import ConfigError
from fluxqueue.fluxion.matcher.policy import NAMED, PolicyError, parse_policy


def register(subparsers: argparse._SubParsersAction) -> None:
    fluxion = subparsers.add_parser("fluxion", help="the Fluxion graph-matching service")
    sub = fluxion.add_subparsers(dest="fluxion_command", metavar="FLUXION_COMMAND")
    fluxion.set_defaults(func=lambda args: (fluxion.print_help(), 2)[1])
    serve = sub.add_parser(
        "serve",
        help="serve the Fluxion gRPC protocol (FluxionService + FluxionAdmin)",
        description="Serve Fluxion's public gRPC protocol (Init/Match/Cancel) and our FluxionAdmin extensions.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4242, help="port (default 4242)")
    serve.add_argument(
        "--policy",
        default="first",
        type=_policy,
        help=f"default match policy when Init names none: {', '.join(NAMED)}, or a custom policy string "
        "such as 'policy=high node_centric=true node_exclusive=true' (as flux-sched accepts)",
    )
    serve.add_argument("--jgf", type=Path, help="load this JGF file at start (otherwise wait for Init)")
    serve.set_defaults(func=_serve)


def _policy(text: str) -> str:
    try:
        parse_policy(text)
    except PolicyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


async def _serve(args: argparse.Namespace) -> int:
    from fluxqueue.fluxion.matcher import JGFError
    from fluxqueue.fluxion.server import FluxionServer

    srv = FluxionServer(args.host, args.port, policy=args.policy)
    if args.jgf:
        try:
            srv.matcher.init(args.jgf.read_bytes(), args.policy)
        except OSError as exc:
            raise ConfigError(f"cannot read {args.jgf}: {exc}") from exc
        except JGFError as exc:
            raise ConfigError(f"{args.jgf}: {exc}") from exc
    try:
        await srv.start()
    except OSError as exc:
        raise ConfigError(str(exc)) from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await srv.stop()
    return 0
