"""`fluxqueue migrate` (and, with the queue store, `fluxqueue queue`)."""

from __future__ import annotations

import argparse
import os

from fluxqueue.errors import ConfigError


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=os.environ.get("FLUXQUEUE_DSN"),
        help="PostgreSQL DSN, e.g. postgresql://user:pass@host:5432/db (env FLUXQUEUE_DSN)",
    )


def require_dsn(args: argparse.Namespace) -> str:
    if not args.dsn:
        raise ConfigError("no database given: pass --dsn or set FLUXQUEUE_DSN")
    return args.dsn


async def _run_migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from fluxqueue.queue.migrate import migrate

    dsn = require_dsn(args)
    try:
        applied = await migrate(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot migrate database: {exc}") from exc
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print("database schema is up to date")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "migrate",
        help="create or upgrade the fluxqueue schema in PostgreSQL",
        description="Apply the numbered SQL migrations (idempotent; safe to run from several replicas).",
    )
    add_dsn_argument(p)
    p.set_defaults(func=_run_migrate)
