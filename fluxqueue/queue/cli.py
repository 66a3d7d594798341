"""`fluxqueue migrate` and `fluxqueue queue` (the queue, running units or node usage as a table)."""

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


def format_table(rows: list[dict]) -> str:
    """Plain aligned columns, like psql's default output (what a person expects from a CLI listing)."""
    if not rows:
        return ""
    headers = list(rows[0].keys())
    cells = [[_cell(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    import datetime

    if value is None:
        return "-"
    if isinstance(value, datetime.timedelta):
        seconds = int(value.total_seconds())
        return (
            f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"
            if seconds >= 3600
            else (f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")
        )
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


async def _run_queue(args: argparse.Namespace) -> int:
    import asyncpg

    from fluxqueue.queue.store import QueueStore

    dsn = require_dsn(args)
    try:
        store = await QueueStore.open(dsn, min_size=1, max_size=1)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to the database: {exc}") from exc
    held: list[dict] = []
    by_queue: dict[tuple[str, str], str] = {}
    usage: list[dict] = []
    view = {"queues": "queue_usage", "preemptions": "preemption_history"}.get(args.view, args.view)
    try:
        rows = await store.view(view)
        if args.view == "queue":
            held = await store.view("held")  # and, below the queue, what each held unit waits for
            by_queue = await store.pending_queues()  # tenant queues: the listing is grouped by queue
            usage = await store.view("queue_usage") if by_queue else []
    except asyncpg.UndefinedTableError as exc:
        raise ConfigError("the fluxqueue schema is missing: run `fluxqueue migrate` first") from exc
    finally:
        await store.close()
    if not rows:
        print(
            {
                "queue": "no units waiting",
                "running": "nothing running",
                "nodes": "no allocations",
                "held": "no units held",
                "waits": "no dependencies",
                "queues": "no tenant queues",
                "preemptions": "no preemptions",
                "runs": "no unit was requeued",
            }[args.view]
        )
    elif by_queue:
        from fluxqueue.queues.listing import grouped_by_queue

        print(grouped_by_queue(rows, by_queue, usage, format_table))
    else:
        print(format_table(rows))
    if held:
        print(f"\nheld until their dependency holds ({len(held)}):")
        print(format_table(held))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    q = subparsers.add_parser(
        "queue",
        help="show the queue (or running units, or node usage) from the database",
        description="Print the pending units in scheduling order, from the fluxqueue.queue view.",
    )
    add_dsn_argument(q)
    q.add_argument(
        "view",
        nargs="?",
        default="queue",
        choices=["queue", "held", "waits", "running", "nodes", "queues", "preemptions", "runs"],
        help="queue (pending, in order, grouped by tenant queue when Queue objects exist; default), held "
        "(waiting for their dependency, and what for), waits (every dependency term and its target's state), "
        "running (holding allocations), nodes (usage per node), queues (each tenant queue's usage against "
        "quota), preemptions (who was evicted for whom) or runs (where each run of a requeued unit ran)",
    )
    q.set_defaults(func=_run_queue)

    p = subparsers.add_parser(
        "migrate",
        help="create or upgrade the fluxqueue schema in PostgreSQL",
        description="Apply the numbered SQL migrations (idempotent; safe to run from several replicas).",
    )
    add_dsn_argument(p)
    p.set_defaults(func=_run_migrate)
