"""The `fluxqueue` command.

Each concern registers its own subcommands (``register(subparsers)`` in ``<package>/cli.py``), so this module
stays a thin frame: parse, set up logging, run, and turn configuration errors into one clear line.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys

from fluxqueue import __version__, runtime
from fluxqueue.errors import ConfigError
from fluxqueue.log import setup_logging
from fluxqueue.runtime import tune_gc

# Modules that contribute subcommands; each defines register(subparsers).
SUBCOMMAND_MODULES = (
    "fluxqueue.queue.cli",  # migrate, queue
    "fluxqueue.controller.cli",  # controller
    "fluxqueue.fluxion.cli",  # fluxion serve
    "fluxqueue.sim.cli",  # sim apiserver | up | run | compare
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxqueue",
        description=(
            "An HPC-grade batch scheduler for Kubernetes: holds Jobs and Pods at admission, queues them "
            "durably in PostgreSQL, places each multi-pod job all at once with the Fluxion graph matcher, "
            "binds the pods and frees the resources when the work ends."
        ),
    )
    parser.add_argument("--version", action="version", version=f"fluxqueue {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"], help="log line format")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A subcommand module that is not present is simply not offered; any other import error is a bug.
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(2)
    setup_logging(args.log_level, args.log_format)
    tune_gc()
    try:
        result = args.func(args)
        if inspect.iscoroutine(result):
            result = runtime.run(result)
    except ConfigError as exc:
        print(f"fluxqueue: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(result, int):
        sys.exit(result)
