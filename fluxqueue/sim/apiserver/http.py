"""The REST API over aiohttp: routing, content negotiation, watch streaming, discovery and OpenAPI.

URL layout and status codes follow k8s.io/apiserver/pkg/endpoints (handlers/create.go: 201 on create,
delete.go: 200 with the object, watch.go: newline-delimited JSON events; a too-old resourceVersion is
reported as an ERROR event carrying a 410 Status, as the watch cache does, cacher.go newErrWatcher).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import HttpVersion11, web

from fluxqueue.log import get_logger

from . import discovery, protobuf, tables
from . import resources as R
from .engine import Ctx
from .errors import APIError, invalid
from .openapi import shared_index
from .podrules import POD_SPEC_SUBRESOURCES
from .resources import ResourceType
from .store import dumps

try:
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .server import APIServer

log = get_logger(__name__)

VERSION = {
    "major": "1",
    "minor": "35",
    "emulationMajor": "1",
    "emulationMinor": "35",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "34",
    "gitVersion": "v1.35.0-fluxqueue-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


# A run of 19 digits may be an integer beyond 64 bits, which orjson reads as a float (json as an int).
# Found by mapping every digit to "0" and looking for 19 of them: ten times faster than a regex search,
# which cost more than decoding the body.
_DIGITS_AS_ZERO = bytes(48 if 48 <= i <= 57 else 46 for i in range(256))
_LONG_DIGITS = b"0" * 19


def loads_json(raw: bytes) -> Any:
    """``json.loads``, several times faster: orjson reads what it can read the same way; the rest (numbers
    orjson reads differently, NaN, invalid UTF-8, malformed bodies and their error messages) is json's."""
    if orjson is not None and _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    # Every JSON body ends with a newline, as kube-apiserver's serializer writes them (apimachinery
    # runtime/serializer/json doEncode: json.NewEncoder(w).Encode(obj))
    return web.Response(body=dumps(body) + b"\n", status=status, content_type=content_type)


def _error(e: APIError) -> web.Response:
    return _json(e.status, e.code)


def _accepts_table(accept: str) -> bool:
    return "as=Table" in accept


# namespaces/{name}/{sub}: the Namespace's own subresources
NAMESPACE_SUBRESOURCES = ("status", "finalize")
# Subresources that stream from a container or the node (remotecommand, port forwarding, proxying): served
# only to answer that the simulator has nothing behind them.
STREAMING: dict[str, tuple[tuple[str, str, str], ...]] = {
    "exec": (R.PODS,),
    "attach": (R.PODS,),
    "portforward": (R.PODS,),
    "proxy": (R.PODS, R.SERVICES, R.NODES),
}


def _partial_metadata(accept: str, list_: bool) -> str | None:
    """The meta.k8s.io version of PartialObjectMetadata(List) the Accept header asks for, if it does
    (``application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1``, what client-go's metadata client
    and controller-runtime's metadata-only informers send). The first acceptable alternative wins, as in
    k8s.io/apiserver endpoints/handlers/negotiation; a plain ``application/json`` before it means full
    objects. A list asked as a single PartialObjectMetadata is not acceptable (406)."""
    if "PartialObjectMetadata" not in accept:
        return None
    for alt in accept.split(","):
        parts = [p.strip() for p in alt.split(";")]
        mtype = parts[0]
        if mtype not in ("application/json", "application/*", "*/*", "application/yaml"):
            continue  # protobuf: not served here, as if absent (the client's JSON alternative follows)
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        kind = params.get("as")
        if kind is None:
            return None
        if (
            kind not in ("PartialObjectMetadata", "PartialObjectMetadataList")
            or params.get("g") != "meta.k8s.io"
        ):
            continue
        version = params.get("v")
        if version not in ("v1", "v1beta1"):
            continue
        if (kind == "PartialObjectMetadataList") != list_:
            continue
        return version
    raise APIError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml, "
        "application/vnd.kubernetes.protobuf",
    )


def _check_resource_version_match(q: Any) -> None:
    """A list's resourceVersionMatch (apimachinery meta/internalversion/validation ValidateListOptions)."""
    match = q.get("resourceVersionMatch")
    if match not in ("Exact", "NotOlderThan"):
        why = f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"'
    elif not q.get("resourceVersion"):
        why = "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    elif match == "Exact" and q.get("resourceVersion") == "0":
        why = 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
    else:
        return
    raise invalid("meta.k8s.io", "ListOptions", "", [("resourceVersionMatch", why)])


def _partial(obj: dict[str, Any], version: str) -> dict[str, Any]:
    """meta.k8s.io PartialObjectMetadata of an object (handlers/response.go asPartialObjectMetadata)."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj["metadata"],
    }


def _partial_list(lst: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": lst["metadata"],
        "items": [_partial(o, version) for o in lst["items"]],
    }


def _bool(v: str | None) -> bool:
    return v is not None and v.lower() in ("1", "true", "yes", "")


class Routes:
    def __init__(self, server: APIServer):
        self.server = server
        self.engine = server.engine
        self.schemas = shared_index()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.server.trace:
            log.info(
                "request",
                method=request.method,
                path=request.path_qs,
                ctype=request.headers.get("Content-Type", ""),
                accept=request.headers.get("Accept", ""),
                ua=request.headers.get("User-Agent", ""),
            )
        try:
            self._authenticate(request)
            if "Expect" in request.headers:
                await self._expect(request)
            return await self._dispatch(request)
        except APIError as e:
            return _error(e)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError, ValueError) as e:
            return _error(APIError(400, "BadRequest", f"the body of the request could not be decoded: {e}"))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as e:
            # a bug in the emulator: answer like the real server's panic recovery, and say where
            log.exception("request failed", method=request.method, path=request.path)
            return _error(APIError(500, "InternalError", f"Internal error occurred: {e!r}"))

    @staticmethod
    async def _expect(request: web.BaseRequest) -> None:
        """``Expect: 100-continue`` (curl's large bodies): what aiohttp's router would answer."""
        if request.headers["Expect"].lower() != "100-continue":
            raise APIError(417, "ExpectationFailed", f"Unknown Expect: {request.headers['Expect']}")
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0

    def _authenticate(self, request: web.BaseRequest) -> None:
        if not self.server.tls:
            return  # like the old insecure port: clients do not send bearer tokens over plain HTTP
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.server.token}" and not (
            auth.startswith("Bearer ") and self.engine.tokens.valid(auth[7:])
        ):
            raise APIError(401, "Unauthorized", "Unauthorized")

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        accept = request.headers.get("Accept", "")
        top = segs[0] if segs else ""
        # the resource requests first: they are nearly all of the traffic
        if top == "api" and len(segs) > 2:
            group, version, rest = "", segs[1], segs[2:]
        elif top == "apis" and len(segs) > 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return await self._other(request, segs, accept)
        reg = self.engine.registry
        if group and not reg.serves(group, version):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if not group and version != "v1":
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            cand = reg.get((group, version, rest[2]))
            if (cand is not None and cand.namespaced) or (not group and rest[2] == "bindings"):
                ns, rest = rest[1], rest[2:]
            elif group or rest[2] not in NAMESPACE_SUBRESOURCES:
                # namespaces/{ns}/{plural} of a type not served (or not namespaced): no such path, as
                # kube-apiserver's router answers, rather than a subresource of the Namespace
                raise APIError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) if len(rest) > 2 else None
        method = request.method
        if plural == "bindings" and not group and ns is not None and method == "POST":
            plural, sub = "pods", "binding"  # the legacy POST /namespaces/{ns}/bindings
        rt = reg.get((group, version, plural))
        if rt is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and ns is None and method != "GET":
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return await self._resource(request, rt, ns, name, sub, accept)

    async def _other(self, request: web.BaseRequest, segs: list[str], accept: str) -> web.StreamResponse:
        """Health, version, discovery and OpenAPI."""
        path = "/" + "/".join(segs)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(VERSION)
        if path == "/":
            return _json(
                {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v2", "/openapi/v3", "/version"]}
            )
        if segs[0] == "openapi":
            return self._openapi(request, segs, accept)
        if segs == ["api"]:
            if "apidiscovery.k8s.io" in accept and "v=v2" in accept:
                return _json(discovery.aggregated(self.engine.registry, core=True), content_type=AGG_V2)
            return _json(discovery.api_versions(request.host))
        if segs == ["apis"]:
            if "apidiscovery.k8s.io" in accept and "v=v2" in accept:
                return _json(discovery.aggregated(self.engine.registry, core=False), content_type=AGG_V2)
            return _json(discovery.group_list(self.engine.registry))
        if segs[0] == "api" and len(segs) == 2:
            if segs[1] != "v1":
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return _json(discovery.resource_list(self.engine.registry, "", "v1"))
        if segs[0] == "apis" and len(segs) == 2:
            versions = self.engine.registry.groups().get(segs[1])
            if not versions:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return _json(discovery.group_doc(segs[1], versions))
        if segs[0] == "apis" and len(segs) == 3:
            if not self.engine.registry.serves(segs[1], segs[2]):
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return _json(discovery.resource_list(self.engine.registry, segs[1], segs[2]))
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    def _openapi(self, request: web.BaseRequest, segs: list[str], accept: str) -> web.Response:
        reg = self.engine.registry
        if segs[1:] == ["v2"]:
            if "protobuf" in accept and "json" not in accept:
                raise APIError(406, "NotAcceptable", "only application/json is served")
            return web.Response(body=self.schemas.v2_doc(reg), headers={"Content-Type": "application/json"})
        if segs[1:] == ["v3"]:
            return _json(self.schemas.v3_root(reg))
        if len(segs) >= 3 and segs[1] == "v3":
            rest = segs[2:]
            if rest[0] == "api" and len(rest) == 2:
                group, version = "", rest[1]
            elif rest[0] == "apis" and len(rest) == 3:
                group, version = rest[1], rest[2]
            else:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            if version not in (reg.groups().get(group) or []):
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            _h, body = self.schemas.v3_doc(reg, group, version)
            return web.Response(
                body=body, headers={"Content-Type": "application/json", "Cache-Control": "public, immutable"}
            )
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    def _ctx(self, request: web.BaseRequest, body_opts: dict[str, Any] | None = None) -> Ctx:
        if not request.query_string and not body_opts:
            # most writes: no options
            return Ctx(user_agent=request.headers.get("User-Agent", ""), own_body=True)
        q = request.query
        dry = q.getall("dryRun", []) + ((body_opts or {}).get("dryRun") or [])
        return Ctx(
            user_agent=request.headers.get("User-Agent", ""),
            dry_run="All" in dry,
            field_manager=q.get("fieldManager"),
            force=_bool(q.get("force")) if "force" in q else False,
            own_body=True,
        )

    async def _body(self, request: web.BaseRequest) -> Any:
        content = request.content
        if content.is_eof():
            # the whole body came with the request (nearly always): take it as it is, without
            # BaseRequest.read()'s reads into a bytearray and copy
            raw = content.read_nowait()
            if len(raw) > MAX_BODY:
                raise APIError(413, "RequestEntityTooLarge", "the request is too large")
        else:
            raw = await request.read()
        if not raw:
            return None
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        if ctype == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(raw)
        return loads_json(raw)

    def _strict(self, request: web.BaseRequest, rt: ResourceType, body: Any) -> list[str]:
        """fieldValidation=Strict|Warn: unknown fields are an error or a warning (default Warn)."""
        mode = request.query.get("fieldValidation", "Warn")
        if mode == "Ignore" or not isinstance(body, dict):
            return []
        unknown = self.schemas.unknown_fields(rt, body)
        if unknown and mode == "Strict":
            if rt.custom:
                msg = ", ".join(f'unknown field "{u.lstrip(".")}"' for u in unknown)
            else:
                msg = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise APIError(400, "BadRequest", f"strict decoding error: {msg}")
        return [f'unknown field "{u.lstrip(".")}"' for u in unknown]

    async def _resource(
        self,
        request: web.BaseRequest,
        rt: ResourceType,
        ns: str | None,
        name: str | None,
        sub: str | None,
        accept: str,
    ) -> web.StreamResponse:
        m = request.method
        q = request.query
        e = self.engine
        if sub in STREAMING and rt.key in STREAMING[sub]:
            await e.get(rt, name, ns)  # 404 for a missing object first, as the real server
            why = (
                "simulated containers run no processes" if sub in ("exec", "attach") else "it has no network"
            )
            raise APIError(400, "BadRequest", f"{rt.plural}/{sub} is not supported by the simulator: {why}")
        if m == "GET":
            if name is None:
                if _bool(q.get("watch")) if "watch" in q else False:
                    return await self._watch(request, rt, ns, accept)
                partial = _partial_metadata(accept, list_=True)
                if "resourceVersionMatch" in q:
                    _check_resource_version_match(q)
                limit = int(q["limit"]) if q.get("limit") else None
                lst = await e.list(
                    rt, ns, q.get("labelSelector"), q.get("fieldSelector"), limit, q.get("continue") or None
                )
                if partial is not None:
                    return _json(_partial_list(lst, partial))
                if _accepts_table(accept):
                    return _json(
                        tables.to_table(
                            rt,
                            lst["items"],
                            lst["metadata"]["resourceVersion"],
                            q.get("includeObject", "Metadata"),
                            lst["metadata"].get("continue"),
                        )
                    )
                return _json(lst)
            if sub == "log":
                return await self._log(rt, ns, name, q)
            obj = await e.get(rt, name, ns, sub if sub == "scale" else None)
            if sub not in (None, "status", "scale") and not (
                rt.key == R.PODS and sub in POD_SPEC_SUBRESOURCES
            ):
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            partial = _partial_metadata(accept, list_=False) if sub is None else None
            if partial is not None:
                return _json(_partial(obj, partial))
            if _accepts_table(accept) and sub is None:
                return _json(
                    tables.to_table(
                        rt,
                        [obj],
                        obj["metadata"].get("resourceVersion", ""),
                        q.get("includeObject", "Metadata"),
                    )
                )
            return _json(obj)
        if m == "POST":
            body = await self._body(request)
            if sub is None and name is not None:
                raise APIError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            warnings = self._strict(request, rt, body) if sub is None else []
            ctx = self._ctx(request)
            if sub is not None:
                if isinstance(body, dict) and name and not (body.get("metadata") or {}).get("name"):
                    body.setdefault("metadata", {})["name"] = name
                obj = await e.create(rt, body, ns, sub, ctx)
                return _json(obj, 201)
            obj = await e.create(rt, body, ns, None, ctx)
            return self._with_warnings(self._stored(obj, 201), warnings)
        if m == "PUT":
            body = await self._body(request)
            if name is None:
                raise APIError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            warnings = self._strict(request, rt, body) if sub is None else []
            if sub == "finalize" and rt.plural == "namespaces":
                return _json(await e.get(rt, name))
            obj = await e.update(rt, body, ns, sub, self._ctx(request), name=name)
            return self._with_warnings(self._stored(obj), warnings)
        if m == "PATCH":
            if name is None:
                raise APIError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            ptype = PATCH_TYPES.get(ctype)
            if ptype is None:
                raise APIError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
                )
            body = await self._body(request)
            ctx = self._ctx(request)
            warnings = self._strict(request, rt, body) if ptype != "json" and sub is None else []
            existed = e.table(rt).get(ns or "", name) is not None
            obj = await e.patch(rt, name, body, ns, ptype, sub, ctx)
            status = 201 if ptype == "apply" and not existed else 200
            return self._with_warnings(self._stored(obj, status), warnings)
        if m == "DELETE":
            body = await self._body(request) or {}
            ctx = self._ctx(request, body)
            policy = q.get("propagationPolicy") or body.get("propagationPolicy")
            if policy is None and ("orphanDependents" in body or "orphanDependents" in q):
                orphan = body.get("orphanDependents", _bool(q.get("orphanDependents")))
                policy = "Orphan" if orphan else "Background"
            grace = q.get("gracePeriodSeconds") or body.get("gracePeriodSeconds")
            grace = int(grace) if grace is not None else None
            if name is None:
                return _json(
                    await e.delete_collection(
                        rt, ns, q.get("labelSelector"), q.get("fieldSelector"), policy, grace, ctx
                    )
                )
            obj = await e.delete(rt, name, ns, policy, grace, ctx, body.get("preconditions"))
            return self._stored(obj)
        raise APIError(
            405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({m})"
        )

    def _stored(self, obj: Any, status: int = 200) -> web.Response:
        """The answer to a write: the object it stored, serialized once for the answer and the watch events
        (Store.encoded)."""
        return web.Response(
            body=self.engine.store.encoded(obj) + b"\n", status=status, content_type="application/json"
        )

    @staticmethod
    def _with_warnings(resp: web.Response, warnings: list[str]) -> web.Response:
        for w in warnings[:10]:
            resp.headers.add("Warning", f'299 - "{w}"')
        return resp

    async def _log(self, rt: ResourceType, ns: str | None, name: str, q: Any) -> web.Response:
        pod = await self.engine.get(rt, name, ns)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = q.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise APIError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {name}, choose one of: {containers}",
            )
        if container not in containers:
            raise APIError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if not (pod.get("spec") or {}).get("nodeName") or (pod.get("status") or {}).get("phase") == "Pending":
            raise APIError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        # Simulated containers run nothing and so print nothing.
        return web.Response(text="", content_type="text/plain")

    async def _watch(
        self, request: web.BaseRequest, rt: ResourceType, ns: str | None, accept: str
    ) -> web.StreamResponse:
        q = request.query
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 0.0
        if timeout == 0:
            timeout = self.server.watch_timeout()
        table = _accepts_table(accept)
        partial = _partial_metadata(accept, list_=False)
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
        )
        resp.enable_chunked_encoding()
        try:
            stream = await self.engine.watch(
                rt,
                ns,
                q.get("resourceVersion"),
                q.get("labelSelector"),
                q.get("fieldSelector"),
                _bool(q.get("allowWatchBookmarks")) if "allowWatchBookmarks" in q else False,
                timeout,
                _bool(q.get("sendInitialEvents")) if "sendInitialEvents" in q else False,
                batched=True,
            )
        except APIError as e:
            if e.code != 410:
                raise
            await resp.prepare(request)
            await resp.write(dumps({"type": "ERROR", "object": e.status}) + b"\n")
            return resp
        first = True
        include = q.get("includeObject", "Metadata")
        try:
            await resp.prepare(request)
            # Each batch is every event already waiting: written as one chunk, it costs one TLS record and
            # one send instead of one per event (an informer's watch gets several per loop iteration).
            async for batch in stream:
                lines = []
                for typ, obj, ev in batch:
                    if partial is not None:
                        lines.append(dumps({"type": typ, "object": _partial(obj, partial)}) + b"\n")
                    elif table and typ != "BOOKMARK":
                        t = tables.to_table(
                            rt, [obj], obj["metadata"].get("resourceVersion", ""), include, with_columns=first
                        )
                        first = False
                        lines.append(dumps({"type": typ, "object": t}) + b"\n")
                    elif ev is not None and ev.type == typ:
                        lines.append(ev.line())
                    else:
                        lines.append(dumps({"type": typ, "object": obj}) + b"\n")
                await resp.write(lines[0] if len(lines) == 1 else b"".join(lines))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await stream.aclose()
        return resp


MAX_BODY = 64 * 1024 * 1024


def make_server(server: APIServer) -> web.Server:
    """aiohttp's low-level server: every path goes to Routes.handle, which routes by itself, so an
    Application's router, match info and middleware chain would only add work to every request."""
    routes = Routes(server)
    loop = asyncio.get_running_loop()

    def request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY)

    return web.Server(routes.handle, request_factory=request, handler_cancellation=True, access_log=None)
