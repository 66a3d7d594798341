"""`fluxqueue queue` with tenant queues: the pending units grouped by the queue they belong to, each group
under a line of that queue's usage against its quota (from the fluxqueue.queue_usage view)."""

from __future__ import annotations

from collections.abc import Callable


def grouped_by_queue(
    rows: list[dict],
    by_queue: dict[tuple[str, str], str],
    usage: list[dict],
    table: Callable[[list[dict]], str],
) -> str:
    """``rows`` of the queue view (in scheduling order) under one heading per tenant queue, by name."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(by_queue.get((row["namespace"], row["name"]), "default"), []).append(row)
    info = {u["queue"]: u for u in usage}
    out = []
    for name in sorted(groups):
        u = info.get(name) or {}
        parts = [f"queue {name}: {len(groups[name])} pending"]
        if u:
            parts.append(f"{u['running']} running")
            quota = u.get("cpus_quota")
            parts.append(
                f"{u['cpus_used']} CPUs used" + (f" of {quota} guaranteed" if quota is not None else "")
            )
            if u.get("share") is not None:
                parts.append(f"share {u['share']}")
        out.append(", ".join(parts))
        out.append(table(groups[name]))
        out.append("")
    return "\n".join(out).rstrip()
