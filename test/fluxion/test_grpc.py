"""Round trips with a real grpc.aio client against FluxionServer."""

import asyncio
import json

import grpc
import pytest

from fluxqueue.fluxion._proto import fluxion_pb2 as pb
from fluxqueue.fluxion._proto import fluxion_pb2_grpc as pbg
from fluxqueue.fluxion.client import FluxionClient, FluxionError, MatchStatus
from fluxqueue.fluxion.jgf import synthetic_cluster
from fluxqueue.fluxion.server import FluxionServer, FluxionServicer, _State

from .helpers import TWO_POD_JOB_YAML, jobspec


@pytest.fixture
async def server():
    srv = FluxionServer(port=0)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server):
    c = FluxionClient(server.address, timeout=10)
    yield c
    await c.close()


async def test_init_match_cancel_round_trip(client):
    await client.init(synthetic_cluster(3, cores=4, memory_chunks=2).to_jgf(), policy="first")
    assert client.has_admin
    r = await client.match(TWO_POD_JOB_YAML)
    assert r.status is MatchStatus.ALLOCATED and r.jobid == 1 and r.at == 0
    assert {n: (a.cores, a.slots) for n, a in r.nodes.items()} == {"node2": (2, 1), "node1": (2, 1)}
    info = await client.info(1)
    assert info["nodes"] == ["node1", "node2"] and info["duration"] == 3600
    assert await client.cancel(1) is True
    assert await client.cancel(1) is False  # noent_ok, but reported
    assert await client.info(1) is None


async def test_busy_unsatisfiable_and_reserved_in_one_round_trip(client):
    await client.init(synthetic_cluster(2, cores=2, memory_chunks=0).to_json())
    first = await client.match(jobspec(nodes=2, cores=2, duration=100))
    busy = await client.match(jobspec(nodes=1, cores=1))
    never = await client.match(jobspec(nodes=1, cores=3))
    later = await client.match(jobspec(nodes=1, cores=1, duration=50), reserve=True)
    assert first.status is MatchStatus.ALLOCATED
    assert (busy.status, busy.jobid) == (MatchStatus.BUSY, 2)
    assert (never.status, never.jobid) == (MatchStatus.UNSATISFIABLE, 3)
    assert "never" in never.message
    assert (later.status, later.at, later.jobid) == (MatchStatus.RESERVED, 100, 4)
    assert later.nodes  # R is sent for reservations
    assert await client.satisfiable(jobspec(nodes=1, cores=3)) == (
        False,
        "the request can never be satisfied by this graph (even with every resource free)",
    )
    st = await client.stats()
    assert (st["jobs_allocated"], st["jobs_reserved"], st["nodes"]) == (1, 1, 2)
    assert st["resources"]["core"] == {"capacity": 4, "free": 0}


async def test_a_match_batch_answers_as_separate_calls_and_stops_where_asked(client):
    before = await client.match_batch([(json.dumps(jobspec(nodes=1, cores=1)), False)])
    assert before[0].status is MatchStatus.ERROR  # no graph yet: the same answer a Match gets
    await client.init(synthetic_cluster(2, cores=2, memory_chunks=0).to_json())
    one = json.dumps(jobspec(nodes=1, cores=1, duration=100))
    big = json.dumps(jobspec(nodes=1, cores=3))
    whole = json.dumps(jobspec(nodes=2, cores=2, duration=50))
    results = await client.match_batch(
        [(one, False), (big, False), (one, False), (whole, True), (one, False)]
    )
    assert [r.status for r in results] == [
        MatchStatus.ALLOCATED,
        MatchStatus.UNSATISFIABLE,
        MatchStatus.ALLOCATED,
        MatchStatus.RESERVED,
        MatchStatus.ALLOCATED,
    ]
    assert [r.jobid for r in results] == [1, 2, 3, 4, 5]  # ids consumed by every attempt, in order
    assert "never" in results[1].message and results[3].at == 100
    stopped = await client.match_batch(
        [(one, False), (one, False), (one, False)], stop_after_first_unallocated=True
    )
    # The last free core goes to the first; the second finds nothing free: the third is not tried.
    assert [r.status for r in stopped] == [MatchStatus.ALLOCATED, MatchStatus.BUSY]


async def test_bad_jgf_and_unknown_policy_are_init_errors_with_reasons(client):
    with pytest.raises(FluxionError, match="source and/or target vertex not found"):
        await client.init({"graph": {"nodes": [{"id": "0", "metadata": {"type": "cluster", "paths": {"containment": "/c"}}}], "edges": [{"source": "0", "target": "7"}]}})  # fmt: skip
    with pytest.raises(FluxionError, match="unknown match policy 'fastest'"):
        await client.init(synthetic_cluster(1).to_jgf(), policy="fastest")


async def test_a_rejected_init_keeps_the_previous_graph_and_jobs(client):
    await client.init(synthetic_cluster(1, cores=2).to_jgf())
    kept = await client.match(jobspec())
    with pytest.raises(FluxionError):
        await client.init("{}")
    assert (await client.info(kept.jobid))["nodes"] == ["node0"]
    assert (await client.match(jobspec())).jobid == kept.jobid + 1


async def test_match_before_init_and_malformed_jobspec_are_errors_not_crashes(client):
    before = await client.match(jobspec())
    assert before.status is MatchStatus.ERROR and "Init" in before.message
    await client.init(synthetic_cluster(1).to_jgf())
    bad = await client.match("version: 1\nresources: []\ntasks: []\nattributes: {}\n")
    assert bad.status is MatchStatus.ERROR and "'resources' must be a non-empty sequence" in bad.message
    ok = await client.match(jobspec())
    assert ok.jobid == 1  # a malformed jobspec consumes no id


async def test_reapi_options_json_is_accepted_as_policy(client):
    await client.init(
        synthetic_cluster(2, cores=1).to_json(),
        policy=json.dumps({"matcher_policy": "low", "load_format": "jgf"}),
    )
    assert (await client.match(jobspec(nodes=1))).nodes.keys() == {"node0"}
    assert (await client.stats())["policy"] == "low"


async def test_concurrent_rpcs_keep_the_matcher_consistent(client, server):
    await client.init(synthetic_cluster(8, cores=4, memory_chunks=0).to_json())
    results = await asyncio.gather(*(client.match(jobspec(slots=1, cores=1)) for _ in range(40)))
    allocated = [r for r in results if r.status is MatchStatus.ALLOCATED]
    assert len(allocated) == 32 and sorted(r.jobid for r in results) == list(range(1, 41))
    cores = [(n, c) for r in allocated for n, a in r.nodes.items() for c in [a.cores]]
    assert sum(c for _, c in cores) == 32
    await asyncio.gather(*(client.cancel(r.jobid) for r in allocated), *(client.stats() for _ in range(5)))
    assert (await client.stats())["resources"]["core"]["free"] == 32


async def test_admin_calls_replay_partial_cancel_and_node_status(client):
    await client.init(synthetic_cluster(3, cores=2, memory_chunks=0).to_json())
    r = await client.match(jobspec(nodes=2, cores=2))
    await client.init(synthetic_cluster(3, cores=2, memory_chunks=0).to_json())  # e.g. a restart
    await client.replay(r.jobid, r.allocation, duration=3600)
    assert (await client.info(r.jobid))["nodes"] == ["node1", "node2"]
    assert await client.partial_cancel(r.jobid, nodes=["node2"]) is False
    assert await client.set_node_status(["node0", "ghost"], "down") == ["ghost"]
    assert (await client.match(jobspec(nodes=1, cores=1))).nodes.keys() == {"node2"}
    with pytest.raises(FluxionError, match="already in use"):
        await client.replay(r.jobid, r.allocation)
    removed = await client.remove_nodes(["node1"])
    assert removed["busy"] == ["node1"]


async def test_client_degrades_against_a_public_only_server():
    state = _State()
    server = grpc.aio.server()
    pbg.add_FluxionServiceServicer_to_server(FluxionServicer(state), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        c = FluxionClient(f"127.0.0.1:{port}")
        await c.init(synthetic_cluster(1, cores=1).to_jgf())
        assert c.has_admin is False
        assert (await c.match(jobspec())).status is MatchStatus.ALLOCATED
        with pytest.raises(FluxionError, match="needs the FluxionAdmin service"):
            await c.satisfiable(jobspec())
        await c.close()
    finally:
        await server.stop(0)
        state.close()


async def test_public_protocol_clients_see_the_documented_responses(server):
    async with grpc.aio.insecure_channel(server.address) as ch:
        stub = pbg.FluxionServiceStub(ch)
        init = await stub.Init(pb.InitRequest(jgf=synthetic_cluster(1, cores=1).to_json()))
        assert init.status == pb.InitResponse.INIT_SUCCESS
        call = stub.Match(pb.MatchRequest(jobspec=json.dumps(jobspec(cores=2)), request="allocate"))
        resp = await call
        assert (resp.status, resp.allocation, resp.jobid) == (pb.MatchResponse.MATCH_DENIED, "", 1)
        assert dict(await call.trailing_metadata())["fluxion-denied"] == "unsatisfiable"
        cancel = await stub.Cancel(pb.CancelRequest(jobID=5))
        assert (cancel.status, cancel.error, cancel.jobID) == (pb.CancelResponse.CANCEL_SUCCESS, 0, 5)
