"""Apply the numbered plain-SQL files in ``fluxqueue/queue/migrations/`` in order, once each.

The SQL ships inside the package (wheel and image alike), so ``fluxqueue migrate`` works wherever fluxqueue is
installed; ``$FLUXQUEUE_MIGRATIONS`` points at another directory (a test, or a hotfix mounted in).

Applied versions are recorded in ``fluxqueue.schema_migrations``; a PostgreSQL advisory lock serialises
concurrent runners (two controller replicas starting together), and each file runs in its own transaction,
so a failed file leaves nothing half-applied and re-running is always safe.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from fluxqueue.errors import ConfigError
from fluxqueue.log import get_logger

log = get_logger(__name__)

# Arbitrary but fixed: every fluxqueue process agrees on it.
MIGRATION_LOCK_KEY = 0x666C7578_7175  # "fluxqu"
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()


# The package's own SQL; setuptools ships it as package data (pyproject.toml).
PACKAGED_MIGRATIONS = Path(__file__).resolve().with_name("migrations")


def migrations_dir() -> Path:
    """The directory of SQL files: $FLUXQUEUE_MIGRATIONS, else the package's ``migrations/``."""
    env = os.environ.get("FLUXQUEUE_MIGRATIONS")
    if env:
        return Path(env)
    return PACKAGED_MIGRATIONS


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    if not directory.is_dir():
        hint = (
            "check FLUXQUEUE_MIGRATIONS" if os.environ.get("FLUXQUEUE_MIGRATIONS") else "reinstall fluxqueue"
        )
        raise ConfigError(f"migrations directory not found: {directory} ({hint})")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _FILENAME.match(path.name)
        if not m:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise ValueError(
                f"two migrations share version {version}: {found[version].path.name}, {path.name}"
            )
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS fluxqueue;
CREATE TABLE IF NOT EXISTS fluxqueue.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fluxqueue.schema_migrations IS 'SQL files from fluxqueue/queue/migrations/ that have been applied';
"""


async def apply_migrations(conn: asyncpg.Connection, directory: Path | None = None) -> list[Migration]:
    """Apply pending migrations on ``conn``; returns those applied now (empty when up to date)."""
    migrations = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM fluxqueue.schema_migrations")}
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO fluxqueue.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration", version=migration.version, name=migration.name)
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate(dsn: str, directory: Path | None = None) -> list[Migration]:
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, directory)
    finally:
        await conn.close()
