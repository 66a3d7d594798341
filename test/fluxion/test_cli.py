import asyncio
import socket
import sys

from fluxqueue.fluxion.client import FluxionClient, MatchStatus
from fluxqueue.fluxion.jgf import synthetic_cluster

from .helpers import jobspec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_fluxion_serve_command_loads_a_graph_and_serves(tmp_path):
    jgf = tmp_path / "cluster.json"
    jgf.write_text(synthetic_cluster(2, cores=2).to_json())
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluxqueue",
        "fluxion",
        "serve",
        "--port",
        str(port),
        "--policy",
        "low",
        "--jgf",
        str(jgf),
    )
    try:
        client = FluxionClient(f"127.0.0.1:{port}", timeout=5, retries=8, retry_backoff=0.25)
        r = await client.match(jobspec(nodes=1))
        assert r.status is MatchStatus.ALLOCATED and list(r.nodes) == ["node0"]
        assert (await client.stats())["policy"] == "low"
        await client.close()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
