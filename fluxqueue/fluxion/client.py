"""Async client for a Fluxion service: ours (FluxionService + FluxionAdmin) or flux-sched's public one.

One persistent channel; every call has a deadline (Init's grows with the size of the graph); only calls that
are safe to repeat are retried, and only when the server was unreachable (UNAVAILABLE): Init (replaces the
graph wholesale), Cancel (unknown ids succeed), and the read-only admin calls. Match is never retried: a
retry after a lost response would allocate twice.

Busy vs unsatisfiable: our server says which in trailing metadata; against the public server a failed match is
a gRPC error and is reported as BUSY (it cannot tell), and `has_admin` is False.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from fluxqueue.fluxion._proto import fluxion_pb2 as pb
from fluxqueue.fluxion._proto import fluxion_pb2_grpc as pbg
from fluxqueue.fluxion.allocation import NodeAssignment, nodes_from_allocation
from fluxqueue.fluxion.jgf import dumps
from fluxqueue.fluxion.server import GRPC_OPTIONS, MD_CANCEL, MD_DENIED, MD_MESSAGE
from fluxqueue.log import get_logger

log = get_logger(__name__)


class MatchStatus(enum.Enum):
    ALLOCATED = "allocated"
    RESERVED = "reserved"
    BUSY = "busy"
    UNSATISFIABLE = "unsatisfiable"
    ERROR = "error"


class FluxionError(Exception):
    """The service refused a request or could not be reached."""


@dataclass
class MatchResult:
    status: MatchStatus
    jobid: int = 0
    at: int = 0
    allocation: str = ""
    overhead: float = 0.0
    message: str = ""
    _nodes: dict[str, NodeAssignment] | None = field(default=None, repr=False)

    @property
    def nodes(self) -> dict[str, NodeAssignment]:
        if self._nodes is None:
            self._nodes = nodes_from_allocation(self.allocation) if self.allocation else {}
        return self._nodes

    @property
    def ok(self) -> bool:
        return self.status in (MatchStatus.ALLOCATED, MatchStatus.RESERVED)


def _match_result(resp: Any, denied: str, message: str) -> MatchResult:
    """A MatchResponse and what its trailing metadata said, as a MatchResult."""
    if resp.status == pb.MatchResponse.MATCH_SUCCESS and resp.allocation:
        status = MatchStatus.RESERVED if resp.reserved else MatchStatus.ALLOCATED
        return MatchResult(status, resp.jobid, resp.at, resp.allocation, resp.overhead)
    if resp.status == pb.MatchResponse.MATCH_ERROR:
        return MatchResult(MatchStatus.ERROR, resp.jobid, message=message or "match error")
    status = MatchStatus.UNSATISFIABLE if (denied or "busy") == "unsatisfiable" else MatchStatus.BUSY
    return MatchResult(status, resp.jobid, overhead=resp.overhead, message=message)


def _trailing(call_metadata) -> dict[str, str]:
    return {k: v for k, v in (call_metadata or ())}


class FluxionAdmin(Protocol):
    """Our second service beside the public FluxionService (DESIGN: the controller degrades without it):
    what the controller uses of it."""

    async def stats(self) -> dict[str, Any]: ...

    async def replay(self, jobid: int, allocation: str, duration: int = 0, at: int = 0) -> None: ...

    async def match_batch(
        self, requests: list[tuple[str, bool]], *, stop_after_first_unallocated: bool = False
    ) -> list[MatchResult]: ...


class FluxionClient:
    def __init__(
        self,
        address: str,
        *,
        timeout: float = 30.0,
        init_seconds_per_mb: float = 0.1,
        retries: int = 3,
        retry_backoff: float = 0.2,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.init_seconds_per_mb = init_seconds_per_mb
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.has_admin = False
        self._probed = False
        self._channel: grpc.aio.Channel | None = None
        self._svc: pbg.FluxionServiceStub | None = None
        self._admin: pbg.FluxionAdminStub | None = None

    @property
    def admin(self) -> FluxionAdmin | None:
        """The FluxionAdmin capability when the server has it (ours), None for flux-sched's public service
        (known once probed: the first call probes)."""
        return self if self.has_admin else None

    # -- plumbing ------------------------------------------------------------------------------------------

    async def _ensure(self) -> None:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=GRPC_OPTIONS)
            self._svc = pbg.FluxionServiceStub(self._channel)
            self._admin = pbg.FluxionAdminStub(self._channel)
        if not self._probed:
            await self.probe()

    async def probe(self) -> bool:
        """Find out whether FluxionAdmin is served (an UNIMPLEMENTED Stats means the public server)."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=GRPC_OPTIONS)
            self._svc = pbg.FluxionServiceStub(self._channel)
            self._admin = pbg.FluxionAdminStub(self._channel)
        try:
            await self._retrying(lambda: self._admin.Stats(pb.StatsRequest(), timeout=self.timeout))
            self.has_admin = True
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise FluxionError(f"fluxion at {self.address}: {exc.code().name}: {exc.details()}") from exc
            self.has_admin = False
        self._probed = True
        return self.has_admin

    async def _retrying(self, make_call):
        """Run an idempotent call, retrying when the server is unreachable."""
        delay = self.retry_backoff
        for attempt in range(self.retries + 1):
            try:
                return await make_call()
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                log.warning("fluxion unavailable, retrying", address=self.address, attempt=attempt + 1)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _need_admin(self, what: str) -> None:
        if not self.has_admin:
            raise FluxionError(f"{what} needs the FluxionAdmin service, which {self.address} does not offer")

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> FluxionClient:
        await self._ensure()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- public protocol -----------------------------------------------------------------------------------

    async def init(self, jgf: dict[str, Any] | str, policy: str = "first") -> None:
        await self._ensure()
        text = jgf if isinstance(jgf, str) else dumps(jgf)
        deadline = self.timeout + self.init_seconds_per_mb * len(text) / 1e6
        req = pb.InitRequest(policy=policy, jgf=text)
        try:
            call = None

            async def do():
                nonlocal call
                call = self._svc.Init(req, timeout=deadline)
                return await call

            resp = await self._retrying(do)
        except grpc.aio.AioRpcError as exc:
            raise FluxionError(f"Init failed: {exc.code().name}: {exc.details()}") from exc
        if resp.status != pb.InitResponse.INIT_SUCCESS:
            md = _trailing(await call.trailing_metadata())
            raise FluxionError(
                f"Init failed: {md.get(MD_MESSAGE) or pb.InitResponse.ResultType.Name(resp.status)}"
            )

    async def match(self, jobspec: dict[str, Any] | str, reserve: bool = False) -> MatchResult:
        await self._ensure()
        text = jobspec if isinstance(jobspec, str) else json.dumps(jobspec)
        call = self._svc.Match(pb.MatchRequest(jobspec=text, reservation=reserve), timeout=self.timeout)
        try:
            resp = await call
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNKNOWN:
                # The public server reports any failed match this way; it cannot say whether it ever fits.
                return MatchResult(MatchStatus.BUSY, message=exc.details() or "no match")
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
                return MatchResult(MatchStatus.ERROR, message=exc.details() or code.name)
            raise FluxionError(f"Match failed: {code.name}: {exc.details()}") from exc
        if resp.status == pb.MatchResponse.MATCH_SUCCESS and resp.allocation:
            return _match_result(resp, "", "")
        md = _trailing(await call.trailing_metadata())
        return _match_result(resp, md.get(MD_DENIED, ""), md.get(MD_MESSAGE, ""))

    async def match_batch(
        self, requests: list[tuple[str, bool]], *, stop_after_first_unallocated: bool = False
    ) -> list[MatchResult]:
        """Several matches (jobspec text, reserve) in one round trip, made in order as separate calls would be
        (FluxionAdmin.MatchBatch); with ``stop_after_first_unallocated``, fewer results than requests when the
        server stopped after one that was not a plain allocation. FluxionError when the server has no such
        call (the public flux-sched service): match one at a time then."""
        req = pb.MatchBatchRequest(
            requests=[pb.MatchRequest(jobspec=text, reservation=reserve) for text, reserve in requests],
            stop_after_first_unallocated=stop_after_first_unallocated,
        )
        await self._ensure()
        self._need_admin("match batch")
        try:
            resp = await self._admin.MatchBatch(req, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
                # As Match reports it (e.g. the service restarted and has no graph yet): the first unit
                # waits with the reason, and the caller's next pass reloads the service.
                return [MatchResult(MatchStatus.ERROR, message=exc.details() or code.name)]
            raise FluxionError(f"match batch failed: {code.name}: {exc.details()}") from exc
        return [_match_result(r.response, r.denied, r.message) for r in resp.results]

    async def cancel(self, jobid: int) -> bool:
        """Free a job's allocation or reservation; False when the server did not know the id."""
        await self._ensure()
        call = None

        async def do():
            nonlocal call
            call = self._svc.Cancel(pb.CancelRequest(jobID=jobid), timeout=self.timeout)
            return await call

        try:
            resp = await self._retrying(do)
        except grpc.aio.AioRpcError as exc:
            raise FluxionError(f"Cancel {jobid} failed: {exc.code().name}: {exc.details()}") from exc
        if resp.status != pb.CancelResponse.CANCEL_SUCCESS or resp.error:
            raise FluxionError(f"Cancel {jobid} failed: status {resp.status} error {resp.error}")
        md = _trailing(await call.trailing_metadata())
        return md.get(MD_CANCEL, "ok") != "noent"

    # -- FluxionAdmin --------------------------------------------------------------------------------------

    async def _admin_call(self, what: str, method: str, request, retry: bool = False):
        await self._ensure()
        self._need_admin(what)
        fn = getattr(self._admin, method)
        try:
            if retry:
                return await self._retrying(lambda: fn(request, timeout=self.timeout))
            return await fn(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise FluxionError(f"{what} failed: {exc.code().name}: {exc.details()}") from exc

    async def satisfiable(self, jobspec: dict[str, Any] | str) -> tuple[bool, str]:
        text = jobspec if isinstance(jobspec, str) else json.dumps(jobspec)
        resp = await self._admin_call(
            "satisfiability", "Satisfiability", pb.SatisfiabilityRequest(jobspec=text), True
        )
        return resp.satisfiable, resp.message

    async def stats(self) -> dict[str, Any]:
        resp = await self._admin_call("stats", "Stats", pb.StatsRequest(), True)
        out = {
            f.name: getattr(resp, f.name) for f in pb.StatsResponse.DESCRIPTOR.fields if f.name != "resources"
        }
        out["resources"] = {r.type: {"capacity": r.capacity, "free": r.free} for r in resp.resources}
        return out

    async def set_node_status(self, name: str | list[str], status: str) -> list[str]:
        names = [name] if isinstance(name, str) else list(name)
        req = pb.SetNodeStatusRequest(nodes=names, status=status)
        resp = await self._admin_call("set node status", "SetNodeStatus", req, True)
        return list(resp.unknown)

    async def replay(self, jobid: int, allocation: str, duration: int = 0, at: int = 0) -> None:
        req = pb.UpdateAllocateRequest(jobid=jobid, allocation=allocation, duration=duration, at=at)
        resp = await self._admin_call("replay", "UpdateAllocate", req)
        if not resp.ok:
            raise FluxionError(f"replay of job {jobid} failed: {resp.message}")

    async def partial_cancel(self, jobid: int, allocation: str = "", nodes: list[str] | None = None) -> bool:
        """Release part of a job; True when nothing is left (the job is gone)."""
        req = pb.PartialCancelRequest(jobid=jobid, allocation=allocation, nodes=nodes or [])
        resp = await self._admin_call("partial cancel", "PartialCancel", req)
        return resp.full_removal or resp.noent

    async def info(self, jobid: int) -> dict[str, Any] | None:
        resp = await self._admin_call("info", "Info", pb.InfoRequest(jobid=jobid), True)
        if not resp.found:
            return None
        return {
            "jobid": jobid,
            "reserved": resp.reserved,
            "at": resp.at,
            "duration": resp.duration,
            "overhead": resp.overhead,
            "allocation": resp.allocation,
            "nodes": list(resp.nodes),
        }

    async def add_nodes(self, jgf: dict[str, Any] | str, parent_path: str = "") -> int:
        text = jgf if isinstance(jgf, str) else dumps(jgf)
        resp = await self._admin_call(
            "add nodes", "AddNodes", pb.AddNodesRequest(jgf=text, parent_path=parent_path)
        )
        return resp.vertices_added

    async def remove_nodes(self, names: list[str], force: bool = False) -> dict[str, list]:
        resp = await self._admin_call(
            "remove nodes", "RemoveNodes", pb.RemoveNodesRequest(nodes=names, force=force)
        )
        return {
            "removed": list(resp.removed),
            "busy": list(resp.busy),
            "unknown": list(resp.unknown),
            "jobs_affected": list(resp.jobs_affected),
        }
