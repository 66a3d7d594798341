"""Real command-line tools (kubectl, helm) run from async tests without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path


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
