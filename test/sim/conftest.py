"""Fixtures for tests of the simulated cluster: a running API emulator with a kubeconfig real clients use."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fluxqueue.sim.apiserver import APIServer


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


async def run_tool(
    binary: Path,
    *args: str,
    kubeconfig: Path,
    stdin: str | None = None,
    limit_s: float = 30,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl/helm without blocking the event loop the emulator serves on."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(kubeconfig.parent))
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), limit_s
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    result = subprocess.CompletedProcess(
        [str(binary), *args], proc.returncode or 0, out.decode(), err.decode()
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{binary.name} {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
        )
    return result


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
