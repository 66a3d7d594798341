"""The Fluxion gRPC service: public `FluxionService` plus our `FluxionAdmin`, over one `Matcher`.

One matcher state, serialised: every RPC that reads or changes it holds one lock, in arrival order, so
concurrent RPCs can never interleave inside the matcher; long work (Init) runs on a worker thread so it does
not stall the event loop, short work (Match, Cancel) runs on the loop. See
proto/fluxion.proto for how we report what the public messages cannot carry (busy vs unsatisfiable, noent).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from fluxqueue.fluxion._proto import fluxion_pb2 as pb
from fluxqueue.fluxion._proto import fluxion_pb2_grpc as pbg
from fluxqueue.fluxion.matcher import (
    ALLOCATE,
    ALLOCATE_ORELSE_RESERVE,
    SATISFIABILITY,
    JGFError,
    JobspecError,
    Matcher,
    NotInitialized,
    PolicyError,
)
from fluxqueue.fluxion.matcher.jobspec import parse_jobspec
from fluxqueue.log import get_logger

log = get_logger(__name__)

MAX_MESSAGE_BYTES = 1 << 30  # a JGF of 16k nodes x 64 cores is ~350 MB; gRPC's default is 4 MB
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

# Trailing metadata keys (documented in proto/fluxion.proto).
MD_DENIED = "fluxion-denied"
MD_MESSAGE = "fluxion-message"
MD_CANCEL = "fluxion-cancel"

INLINE_BATCH = 256  # match batches up to this size run on the event loop (each match is well under 1 ms)
_OPS = {"": ALLOCATE, "allocate": ALLOCATE, "allocate_with_satisfiability": ALLOCATE}


class _State:
    """The matcher, touched by one RPC at a time, in arrival order."""

    def __init__(self, policy: str = "") -> None:
        self.matcher = Matcher()
        self.default_policy = policy
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fluxion-matcher")
        self._lock = asyncio.Lock()

    async def run(self, fn, *args) -> Any:
        """Long work (Init, replays, node changes) on the worker thread, so the event loop keeps serving."""
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def run_inline(self, fn, *args) -> Any:
        """Short work (a match, a cancel: well under a millisecond) right on the event loop: the hop to the
        worker thread and back cost more than the match itself (most of the service's CPU per match)."""
        async with self._lock:
            return fn(*args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _msg(text: str) -> str:
    # Metadata values must be printable ASCII without newlines.
    return text.encode("ascii", "replace").decode().replace("\n", " ")[:4000]


def match_one(matcher: Matcher, request: Any) -> tuple[Any, str, str]:
    """One MatchRequest: (MatchResponse, denied as in MD_DENIED or "", message as in MD_MESSAGE or "")."""
    op = ALLOCATE_ORELSE_RESERVE if request.reservation else _OPS.get(request.request, request.request)
    if op not in (ALLOCATE, ALLOCATE_ORELSE_RESERVE, SATISFIABILITY):
        return (
            pb.MatchResponse(status=pb.MatchResponse.MATCH_ERROR),
            "",
            f"unknown match request {request.request!r}",
        )
    try:
        out = matcher.match(request.jobspec, op)
    except JobspecError as exc:
        return pb.MatchResponse(status=pb.MatchResponse.MATCH_ERROR), "", f"invalid jobspec: {exc}"
    if out.ok:
        resp = pb.MatchResponse(
            allocation=out.r,
            jobid=out.jobid,
            reserved=out.at > 0,
            at=out.at,
            overhead=out.overhead,
            status=pb.MatchResponse.MATCH_SUCCESS,
        )
        return resp, "", ""
    resp = pb.MatchResponse(jobid=out.jobid, overhead=out.overhead, status=pb.MatchResponse.MATCH_DENIED)
    return resp, out.status, out.message


def match_batch(matcher: Matcher, request: Any) -> Any:
    """MatchBatch: the requests in order, as separate Match calls would make them."""
    results = []
    for one in request.requests:
        resp, denied, message = match_one(matcher, one)
        results.append(
            pb.MatchBatchResult(response=resp, denied=denied, message=_msg(message) if message else "")
        )
        allocated = resp.status == pb.MatchResponse.MATCH_SUCCESS and not resp.reserved
        if request.stop_after_first_unallocated and not allocated:
            break
    return pb.MatchBatchResponse(results=results)


class FluxionServicer(pbg.FluxionServiceServicer):
    def __init__(self, state: _State) -> None:
        self.s = state

    async def Init(self, request, context):
        policy = request.policy or self.s.default_policy
        try:
            await self.s.run(self.s.matcher.init, request.jgf, policy)
        except (JGFError, PolicyError) as exc:
            log.warning("init rejected", reason=str(exc))
            context.set_trailing_metadata(((MD_MESSAGE, _msg(str(exc))),))
            return pb.InitResponse(status=pb.InitResponse.INIT_ERROR)
        st = self.s.matcher.stats()
        log.info(
            "graph loaded",
            vertices=st["vertices"],
            nodes=st["nodes"],
            policy=st["policy"],
            seconds=round(st["load_seconds"], 3),
        )
        return pb.InitResponse(status=pb.InitResponse.INIT_SUCCESS)

    async def Match(self, request, context):
        try:
            resp, denied, message = await self.s.run_inline(match_one, self.s.matcher, request)
        except NotInitialized as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        metadata = ((MD_DENIED, denied),) if denied else ()
        if message:
            metadata += ((MD_MESSAGE, _msg(message)),)
        if metadata:
            context.set_trailing_metadata(metadata)
        return resp

    async def Cancel(self, request, context):
        try:
            found = await self.s.run_inline(self._cancel, request.jobID)
        except NotInitialized as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        context.set_trailing_metadata(((MD_CANCEL, "ok" if found else "noent"),))
        return pb.CancelResponse(jobID=request.jobID, error=0, status=pb.CancelResponse.CANCEL_SUCCESS)

    def _cancel(self, jobid: int) -> bool:
        self.s.matcher._require()
        return self.s.matcher.cancel(jobid)


class FluxionAdminServicer(pbg.FluxionAdminServicer):
    def __init__(self, state: _State) -> None:
        self.s = state

    async def _call(self, context, fn, *args):
        try:
            return await self.s.run(fn, *args)
        except NotInitialized as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except (ValueError, KeyError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def MatchBatch(self, request, context):
        # Short work like Match, but a long batch could hold the loop: run it on the worker thread when big.
        run = self.s.run_inline if len(request.requests) <= INLINE_BATCH else self.s.run
        try:
            return await run(match_batch, self.s.matcher, request)
        except NotInitialized as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    async def Satisfiability(self, request, context):
        def check():
            try:
                js = parse_jobspec(request.jobspec)
            except JobspecError as exc:
                return False, f"invalid jobspec: {exc}", True
            ok, why = self.s.matcher.satisfiable(js)
            return ok, why, False

        ok, why, invalid = await self._call(context, check)
        return pb.SatisfiabilityResponse(satisfiable=ok, message=why, invalid=invalid)

    async def Stats(self, request, context):
        st = await self.s.run(self.s.matcher.stats)
        res = [
            pb.ResourceAmount(
                type=t, capacity=a["capacity"], free=a["free"] if a["free"] is not None else a["capacity"]
            )
            for t, a in st["resources"].items()
        ]
        return pb.StatsResponse(
            vertices=st["vertices"],
            edges=st["edges"],
            nodes=st["nodes"],
            jobs_allocated=st["jobs_allocated"],
            jobs_reserved=st["jobs_reserved"],
            policy=st["policy"],
            load_seconds=st["load_seconds"],
            matches=st["matches"],
            match_min_seconds=st["match_min_seconds"],
            match_max_seconds=st["match_max_seconds"],
            match_avg_seconds=st["match_avg_seconds"],
            resources=res,
            nodes_down=st["nodes_down"],
            nodes_drained=st["nodes_drained"],
            initialized=st["initialized"],
            next_jobid=st["next_jobid"],
            epoch=st["epoch"],
        )

    async def SetNodeStatus(self, request, context):
        unknown = await self._call(
            context, self.s.matcher.set_node_status, list(request.nodes), request.status
        )
        return pb.SetNodeStatusResponse(unknown=unknown)

    async def AddNodes(self, request, context):
        try:
            n = await self.s.run(self.s.matcher.add_subgraph, request.jgf, request.parent_path)
        except JGFError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotInitialized as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return pb.AddNodesResponse(vertices_added=n)

    async def RemoveNodes(self, request, context):
        out = await self._call(context, self.s.matcher.remove_nodes, list(request.nodes), request.force)
        return pb.RemoveNodesResponse(**out)

    async def UpdateAllocate(self, request, context):
        def replay():
            try:
                job = self.s.matcher.update_allocate(
                    request.jobid, request.allocation, request.duration, request.at
                )
            except (ValueError, KeyError, TypeError) as exc:
                return False, str(exc), 0.0
            return True, "", job.overhead

        ok, why, overhead = await self._call(context, replay)
        return pb.UpdateAllocateResponse(ok=ok, message=why, overhead=overhead)

    async def PartialCancel(self, request, context):
        full, noent = await self._call(
            context,
            self.s.matcher.partial_cancel,
            request.jobid,
            request.allocation or None,
            list(request.nodes),
        )
        return pb.PartialCancelResponse(full_removal=full, noent=noent)

    async def Info(self, request, context):
        job = await self._call(context, self.s.matcher.info, request.jobid)
        if job is None:
            return pb.InfoResponse(found=False)
        return pb.InfoResponse(
            found=True,
            reserved=job.reserved,
            at=job.start,
            duration=job.duration,
            overhead=job.overhead,
            allocation=job.r,
            nodes=job.node_names(),
        )


class FluxionServer:
    """In-process server: ``srv = FluxionServer(port=0); await srv.start(); srv.address; await srv.stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4242, policy: str = "") -> None:
        self.host = host
        self.port = port
        self.state = _State(policy)
        self._server: grpc.aio.Server | None = None

    @property
    def matcher(self) -> Matcher:
        return self.state.matcher

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[*GRPC_OPTIONS, ("grpc.keepalive_permit_without_calls", 1)],
        )
        pbg.add_FluxionServiceServicer_to_server(FluxionServicer(self.state), server)
        pbg.add_FluxionAdminServicer_to_server(FluxionAdminServicer(self.state), server)
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            raise OSError(f"cannot listen on {self.host}:{self.port}")
        self.port = bound
        await server.start()
        self._server = server
        log.info("fluxion service listening", address=self.address)

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        self.state.close()
