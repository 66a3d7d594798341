"""Fixtures for tests of the simulated cluster: a running API emulator with a kubeconfig real clients use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.clitools import run_tool

from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.cluster import ClusterSpec, SimCluster


@pytest.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[APIServer]:
    """A started emulator (HTTPS, its own CA); ``apiserver.kubeconfig_path`` is written under tmp_path."""
    api = APIServer(bookmark_interval=0.5)
    await api.start(host="127.0.0.1", port=0)
    api.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield api
    finally:
        await api.stop()


@pytest.fixture
async def api() -> AsyncIterator[APIServer]:
    """An emulator that does not listen: ``api.client`` runs the same pipeline as HTTP requests would."""
    server = APIServer()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def start_cluster(apiserver: APIServer) -> AsyncIterator:
    """``await start_cluster(nodes=2, cpus=16, memory="32Gi")``: a started SimCluster on ``apiserver`` (time
    scale 100 unless given: a simulated second is 10 ms), stopped when the test ends."""
    started: list[SimCluster] = []

    async def start(time_scale: float = 100, **spec) -> SimCluster:
        cluster = SimCluster(apiserver, ClusterSpec(**spec), time_scale=time_scale)
        await cluster.start()
        started.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in reversed(started):
            await cluster.stop()


@pytest.fixture
def kubectl(apiserver: APIServer, tools):
    """``await kubectl("get", "pods", "-o", "json")``: the real kubectl against the emulator."""

    async def run(*args: str, stdin: str | None = None, limit_s: float = 30, check: bool = True):
        return await run_tool(
            tools.kubectl,
            *args,
            kubeconfig=apiserver.kubeconfig_path,
            stdin=stdin,
            limit_s=limit_s,
            check=check,
        )

    return run


@pytest.fixture
def helm(apiserver: APIServer, tools):
    """``await helm("install", ...)``: the real helm against the emulator."""

    async def run(*args: str, limit_s: float = 60, check: bool = True):
        return await run_tool(
            tools.helm, *args, kubeconfig=apiserver.kubeconfig_path, limit_s=limit_s, check=check
        )

    return run
