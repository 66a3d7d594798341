import asyncio
import subprocess
import sys

import asyncpg

from fluxqueue.queue.migrate import apply_migrations, discover, migrate


async def test_migrations_apply_to_a_real_database_and_a_second_run_changes_nothing(dsn):
    first = await migrate(dsn)
    assert [m.version for m in first] == [m.version for m in discover()]
    second = await migrate(dsn)
    assert second == []
    conn = await asyncpg.connect(dsn)
    try:
        versions = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM fluxqueue.schema_migrations ORDER BY 1")
        ]
        assert versions == [m.version for m in discover()]
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'fluxqueue'") == 1
    finally:
        await conn.close()


async def test_two_replicas_migrating_at_once_apply_each_file_exactly_once(dsn):
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        applied = [m.version for batch in results for m in batch]
        assert sorted(applied) == [m.version for m in discover()]
    finally:
        for c in conns:
            await c.close()


def test_migrate_command_twice(dsn):
    for expected in ("applied 0001_schema", "database schema is up to date"):
        result = subprocess.run(
            [sys.executable, "-m", "fluxqueue", "migrate", "--dsn", dsn],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout


def test_a_misnamed_migration_file_is_refused(tmp_path):
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "second.sql").write_text("SELECT 1;")
    try:
        discover(tmp_path)
    except ValueError as exc:
        assert "second.sql" in str(exc)
    else:
        raise AssertionError("a file not named NNNN_name.sql must be refused")
