"""Named SQL queries, one ``-- name: <query>`` section each, kept in the ``*.sql`` files of this package.

Business logic asks for a query by name (``QUERIES["pending_units"]``) and never spells SQL itself
(procrastinate's layout).
"""

from __future__ import annotations

import re
from importlib import resources

_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries() -> dict[str, str]:
    queries: dict[str, str] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text()
        parts = _SECTION.split(text)
        # parts = [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name!r} defined twice")
            queries[name] = body.strip()
    return queries


QUERIES = load_queries()
