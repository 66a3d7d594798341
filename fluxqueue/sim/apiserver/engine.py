"""The request pipeline shared by HTTP requests and the in-process client.

One place decides everything a write goes through, in the order of k8s.io/apiserver's create/update/patch/
delete handlers and generic registry Store: defaulting, managedFields, mutating admission, PrepareForCreate /
PrepareForUpdate, name generation and system fields, validation, validating admission, resourceVersion
preconditions, storage and watch fan-out. Methods return the stored (shared, never mutated) object; callers
that hand it out copy it.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.log import get_logger

from . import builtin_admission, fieldmanager
from . import errors as E
from .coretypes import STRATEGIES as CORE_STRATEGIES
from .coretypes import seed_api_services
from .errors import APIError
from .openapi import shared_index
from .patch import (
    json_merge_patch,
    json_merge_patch_shared,
    json_patch,
    json_patch_shared,
    strategic_merge_patch,
)
from .podrules import POD_SPEC_SUBRESOURCES, PodStrategy, bind, spec_subresource_update
from .resources import (
    CRDS,
    NAMESPACES,
    PODS,
    REPLICATIONCONTROLLERS,
    SERVICEACCOUNTS,
    Key,
    Registry,
    ResourceType,
)
from .selection import field_matcher, parse_field_selector, parse_label_selector
from .store import Obj, Store, Table, WatchItem, clone
from .strategy import DEFAULT, Strategy
from .tokens import Tokens
from .workloads import STRATEGIES as WORKLOAD_STRATEGIES

log = get_logger(__name__)

ADMIN_USER = {"username": "admin", "uid": "admin", "groups": ["system:masters", "system:authenticated"]}
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apiserver/pkg/storage/names: no vowels, no 0/1/3
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_LABEL_TYPES = {("", "namespaces"), ("", "services")}
# At most this many waiting watch events go into one batch (one HTTP chunk): enough to amortize a TLS
# record and a send over many events, small enough that an initial state of 50,000 objects is not one
# buffer of its whole size.
WATCH_BATCH = 256


def new_uid() -> str:
    """``str(uuid.uuid4())`` without building a UUID object (a third of the time)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits 10xx


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Ctx:
    """Who asks and how: the request-scoped options of every verb."""

    user: dict[str, Any] = field(default_factory=lambda: dict(ADMIN_USER))
    user_agent: str = ""
    dry_run: bool = False
    field_manager: str | None = None
    force: bool = False
    # the body was decoded for this request alone (HTTP): the pipeline may work on it instead of a copy
    own_body: bool = False

    def manager(self, default: str = "unknown") -> str:
        if self.field_manager:
            return self.field_manager
        # managerOrUserAgent: the user agent up to the first "/" (e.g. "kubectl", "helm", "Python")
        return (self.user_agent.split("/", 1)[0] if self.user_agent else "") or default


class WatchStream:
    """A watch's events; ``aclose`` always stops the watcher. (A generator closed before its first event never
    runs its ``finally``: a client gone before the response started left its watcher queueing every event of
    the resource, forever.)"""

    __slots__ = ("_events", "_unwatch")

    def __init__(self, events: AsyncIterator[Any], unwatch: Callable[[], None]):
        self._events = events
        self._unwatch = unwatch

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> Any:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()  # type: ignore[attr-defined]
        finally:
            self._unwatch()


class Engine:
    def __init__(self, store: Store | None = None, registry: Registry | None = None):
        self.store = store or Store()
        self.registry = registry or Registry()
        self.strategies: dict[tuple[str, str], Strategy] = {("", "pods"): PodStrategy()}
        self.strategies.update(CORE_STRATEGIES)
        self.strategies.update(WORKLOAD_STRATEGIES)
        self.admission: Any = None  # .admission.Admission, set by APIServer
        self.crds: Any = None  # .crd.CRDManager, set by APIServer
        self.bookmark_interval = 5.0
        self.terminating_pod_timeout: float | None = None  # None: wait the pod's grace period
        self._tasks: set[asyncio.Task[Any]] = set()
        self.tokens = Tokens()  # service account tokens issued through serviceaccounts/token
        self.admin_token: str | None = None  # the kubeconfig's bearer token (APIServer)
        for ns in INITIAL_NAMESPACES:
            self._seed_namespace(ns)
        builtin_admission.seed_priority_classes(self)
        seed_api_services(self)

    # ----- helpers
    def _seed_namespace(self, name: str) -> None:
        obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {}}
        strat = self.strategies[("", "namespaces")]
        strat.default(obj)
        strat.prepare_create(obj)
        self._system_fields(obj)
        strat.after_system_fields(obj)
        self.store.put(self.store.table("", "namespaces"), obj, None)
        self._seed_service_account(name)

    def _seed_service_account(self, ns: str) -> None:
        # The serviceaccount controller creates "default" in every namespace.
        t = self.store.table("", "serviceaccounts")
        if t.get(ns, "default") is None:
            sa = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": ns},
            }
            self._system_fields(sa)
            self.store.put(t, sa, None)

    def _system_fields(self, obj: Obj) -> None:
        md = obj["metadata"]
        md["uid"] = new_uid()
        md["creationTimestamp"] = now_rfc3339()

    def resolve(self, key: Key | ResourceType) -> ResourceType:
        if isinstance(key, ResourceType):
            return key
        rt = self.registry.get(tuple(key))  # type: ignore[arg-type]
        if rt is None:
            group, version, plural = key
            raise APIError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({plural}.{group or 'core'}/{version})",
            )
        return rt

    def strategy(self, rt: ResourceType) -> Strategy:
        s = self.strategies.get((rt.group, rt.plural))
        if s is None and rt.custom and self.crds is not None:
            return self.crds.strategy(rt)
        return s or DEFAULT

    def table(self, rt: ResourceType) -> Table:
        return self.store.table(rt.group, rt.plural)

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        if rt.namespaced:
            if not namespace:
                raise E.bad_request(f"a namespace is required for the namespaced resource {rt.qualified}")
            return namespace
        return ""

    def _check_namespace_writable(self, rt: ResourceType, ns: str, name: str) -> None:
        if not rt.namespaced:
            return
        nsobj = self.store.table("", "namespaces").get("", ns)
        if nsobj is None:
            raise E.not_found("", "namespaces", ns)
        if nsobj["metadata"].get("deletionTimestamp"):
            raise E.forbidden(
                rt.group,
                rt.plural,
                name,
                f"unable to create new content in namespace {ns} because it is being terminated",
            )

    def _out(self, rt: ResourceType, obj: Obj) -> Obj:
        """Objects are stored in one version per group/resource; served versions differ only in apiVersion."""
        if obj.get("apiVersion") != rt.api_version:
            obj = dict(obj)
            obj["apiVersion"] = rt.api_version
        return obj

    def _check_body(
        self, rt: ResourceType, body: Obj, ns: str, expect_kind: str | None = None, copy: bool = True
    ) -> Obj:
        if not isinstance(body, dict):
            raise E.bad_request("the body of the request was not a JSON object")
        obj = clone(body) if copy else body
        kind = expect_kind or rt.kind
        if obj.get("kind") and obj["kind"] != kind:
            raise E.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version ({rt.api_version})"
                if obj.get("apiVersion") != rt.api_version
                else f"Object 'Kind' is {obj['kind']}, expected {kind}"
            )
        if obj.get("apiVersion") and obj["apiVersion"] != rt.api_version and expect_kind is None:
            raise E.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API version ({rt.api_version})"
            )
        obj["kind"] = kind
        obj["apiVersion"] = rt.api_version if expect_kind is None else obj.get("apiVersion", rt.api_version)
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise E.bad_request("metadata must be an object")
        if rt.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise E.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        return obj

    def _check_types(self, rt: ResourceType, obj: Obj) -> None:
        """Values of the wrong JSON type never decode on a real server (400 before any other step)."""
        err = shared_index().type_error(rt, obj)
        if err is not None:
            path, got, want = err
            raise E.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot unmarshal '
                f"{got} into Go struct field {rt.kind}.{path} of type {want}"
            )

    def _validate_meta(self, rt: ResourceType, obj: Obj) -> list[tuple[str, str]]:
        errs: list[tuple[str, str]] = []
        md = obj["metadata"]
        name = md.get("name") or ""
        rx = _DNS_LABEL if (rt.group, rt.plural) in _DNS_LABEL_TYPES else _DNS_SUBDOMAIN
        limit = 63 if rx is _DNS_LABEL else 253
        if rt.kind != "Event" and (not rx.match(name) or len(name) > limit):
            what = "RFC 1123 label" if rx is _DNS_LABEL else "RFC 1123 subdomain"
            errs.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase {what} must consist of lower case alphanumeric '
                    "characters, '-' or '.', and must start and end with an alphanumeric character",
                )
            )
        for k, v in (md.get("labels") or {}).items():
            if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
                errs.append(
                    (
                        "metadata.labels",
                        f'Invalid value: "{v}": a valid label must be an empty string or consist of alphanumeric '
                        "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                        + (
                            " (must be no more than 63 characters)"
                            if isinstance(v, str) and len(v) > 63
                            else ""
                        ),
                    )
                )
            keyname = k.rsplit("/", 1)[-1]
            if len(keyname) > 63 or not _LABEL_NAME.match(keyname):
                errs.append(
                    (
                        "metadata.labels",
                        f'Invalid value: "{k}": name part must consist of alphanumeric characters',
                    )
                )
        for k, v in (md.get("annotations") or {}).items():
            if not isinstance(v, str):
                errs.append((f"metadata.annotations.{k}", "Invalid value: annotation values must be strings"))
        return errs

    def _invalid(self, rt: ResourceType, obj: Obj, errs: list[tuple[str, str]]) -> None:
        if errs:
            raise E.invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), errs)

    # ----- reads
    async def get(
        self, key: Key | ResourceType, name: str, namespace: str | None = None, subresource: str | None = None
    ) -> Obj:
        rt = self.resolve(key)
        ns = self._ns(rt, namespace)
        obj = self.table(rt).get(ns, name)
        if obj is None:
            raise E.not_found(rt.group, rt.plural, name)
        if subresource == "scale":
            return self._scale_of(rt, obj)
        return self._out(rt, obj)

    @staticmethod
    def _selection(
        rt: ResourceType, namespace: str | None, label_selector: str | None, field_selector: str | None
    ) -> tuple[str | None, Any, Any, str | None]:
        """What a list or watch selects: (namespace or None for all, label matcher, field matcher, the node
        of a ``spec.nodeName=`` pod field selector, which the store answers from its per-node index)."""
        ns = namespace if rt.namespaced and namespace else None
        labels = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        fields = field_matcher(rt.group, rt.plural, rt.kind, freqs)
        node = None
        if rt.key == PODS:
            node = next((v for p, eq, v in freqs if p == "spec.nodeName" and eq), None)
        return ns, labels, fields, node

    async def list(
        self,
        key: Key | ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> Obj:
        rt = self.resolve(key)
        ns, labels, fields, node = self._selection(rt, namespace, label_selector, field_selector)
        items, rv, token, remaining = self.store.list(
            self.table(rt), ns, labels, fields, node, limit, continue_
        )
        meta: dict[str, Any] = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
            meta["remainingItemCount"] = remaining
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": [self._out(rt, o) for o in items],
        }

    async def watch(
        self,
        key: Key | ResourceType,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: float | None = None,
        send_initial_events: bool = False,
        batched: bool = False,
    ) -> AsyncIterator[WatchItem] | AsyncIterator[list[WatchItem]]:
        """Events as (type, object, shared event or None); raises APIError(410) when the version is too old.

        ``batched=True`` yields lists of such events instead: everything already waiting (at most
        ``WATCH_BATCH``), so that an HTTP watch writes them in one chunk (one TLS record, one send) rather
        than one per event. Order and content are the same either way.
        """
        rt = self.resolve(key)
        ns, labels, fields, node_key = self._selection(rt, namespace, label_selector, field_selector)
        t = self.table(rt)
        w = self.store.watch(
            t, ns, labels, fields, resource_version, send_initial_events, node_key, lines=batched
        )
        return WatchStream(
            self._watch_stream(rt, t, w, allow_bookmarks, timeout_seconds, batched),
            lambda: self.store.unwatch(t, w),
        )

    async def _watch_stream(self, rt, t, w, allow_bookmarks, timeout_seconds, batched=False):
        deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
        q = w.queue
        try:
            while True:
                wait = self.bookmark_interval if allow_bookmarks else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    wait = left if wait is None else min(wait, left)
                try:
                    if not q.empty():
                        item = q.get_nowait()  # the hot path: no timer when events are waiting
                    elif wait is None:
                        item = await q.get()
                    else:
                        item = await asyncio.wait_for(q.get(), wait)
                except TimeoutError:
                    if allow_bookmarks and (deadline is None or time.monotonic() < deadline):
                        bm = {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version,
                            "metadata": {"resourceVersion": str(self.store.rv)},
                        }
                        yield [("BOOKMARK", bm, None)] if batched else ("BOOKMARK", bm, None)
                    continue
                if not batched:
                    yield self._watch_item(rt, item)
                    continue
                batch = [self._watch_item(rt, item)]
                while not q.empty() and len(batch) < WATCH_BATCH:
                    batch.append(self._watch_item(rt, q.get_nowait()))
                yield batch
        finally:
            self.store.unwatch(t, w)

    def _watch_item(self, rt: ResourceType, item: WatchItem) -> WatchItem:
        typ, obj, ev = item
        if typ == "BOOKMARK":
            return (typ, {"kind": rt.kind, "apiVersion": rt.api_version, **obj}, ev)
        if rt.custom and obj.get("apiVersion") != rt.api_version:
            return (typ, self._out(rt, obj), None)
        return item

    # ----- writes
    async def create(
        self,
        key: Key | ResourceType,
        body: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
        ctx: Ctx | None = None,
    ) -> Obj:
        ctx = ctx or Ctx()
        rt = self.resolve(key)
        ns = self._ns(rt, namespace)
        if subresource:
            return await self._create_subresource(rt, ns, body, subresource, ctx)
        obj = self._check_body(rt, body, ns, copy=not ctx.own_body)
        self._check_types(rt, obj)
        if rt.virtual:
            return self._review(rt, obj, ctx)
        if rt.key == CRDS and self.crds is not None:
            self.crds.default_crd(obj)
        name = obj["metadata"].get("name") or ""
        self._check_namespace_writable(rt, ns, name)
        strat = self.strategy(rt)
        if obj["metadata"].get("resourceVersion"):
            # etcd3 store Create refuses it (a copied object must be stripped before it is re-created)
            raise E.internal("resourceVersion should not be set on objects to be created")
        for k in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            obj["metadata"].pop(k, None)
        strat.default(obj)
        if rt.key == PODS:
            builtin_admission.admit_pod_create(self, obj)
        fieldmanager.record_update(None, obj, ctx.manager(), rt.api_version, rt.kind)
        if self.admission is not None:
            obj = await self.admission.mutate(rt, "CREATE", obj, None, ns, name, None, ctx)
            strat.default(obj)
        obj = self._finish_create(rt, ns, obj, strat, ctx)
        return await self._store_create(rt, ns, obj, ctx)

    def _finish_create(self, rt: ResourceType, ns: str, obj: Obj, strat: Strategy, ctx: Ctx) -> Obj:
        md = obj["metadata"]
        md.pop("deletionTimestamp", None)
        md.pop("deletionGracePeriodSeconds", None)
        strat.prepare_create(obj)
        if rt.has_generation or rt.custom:
            md["generation"] = 1
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + "".join(random.choice(_NAME_CHARS) for _ in range(5))
            else:
                raise E.invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
        self._system_fields(obj)
        strat.after_system_fields(obj)
        errs = self._validate_meta(rt, obj) + strat.validate_create(obj)
        if rt.custom and self.crds is not None:
            errs += self.crds.validate(rt, obj)
        if rt.key == CRDS and self.crds is not None:
            errs += self.crds.validate_crd(obj)
        self._invalid(rt, obj, errs)
        return obj

    async def _store_create(self, rt: ResourceType, ns: str, obj: Obj, ctx: Ctx) -> Obj:
        if self.admission is not None:
            await self.admission.validate(rt, "CREATE", obj, None, ns, obj["metadata"]["name"], None, ctx)
        t = self.table(rt)
        md = obj["metadata"]
        name = md["name"]
        gen = md.get("generateName")
        # RetryGenerateName (GA 1.32): a generated name that collides is drawn again, up to 8 times.
        for _ in range(8):
            if t.get(ns, name) is None or not gen or not name.startswith(gen) or len(name) != len(gen) + 5:
                break
            name = md["name"] = gen + "".join(random.choice(_NAME_CHARS) for _ in range(5))
        if t.get(ns, name) is not None:
            raise E.already_exists(rt.group, rt.plural, name)
        self._check_namespace_writable(rt, ns, name)
        if ctx.dry_run:
            return obj
        stored = self.store.put(t, obj, None)
        self._after_write(rt, None, stored)
        return stored

    def _review(self, rt: ResourceType, obj: Obj, ctx: Ctx) -> Obj:
        """Everyone is the cluster admin here (the kubeconfig's token): every access review allows."""
        if rt.kind == "SelfSubjectAccessReview":
            obj["status"] = {"allowed": True, "reason": "the emulator authorizes its admin for everything"}
        elif rt.kind == "SubjectAccessReview":
            obj["status"] = {"allowed": True, "reason": "the emulator authorizes everyone for everything"}
        elif rt.kind == "TokenReview":
            token = (obj.get("spec") or {}).get("token") or ""
            obj["status"] = self.tokens.review(token, self.admin_token, ADMIN_USER)
        elif rt.kind == "SelfSubjectRulesReview":
            obj["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        else:
            obj["status"] = {
                "userInfo": {k: v for k, v in ctx.user.items() if k in ("username", "uid", "groups")}
            }
        obj["metadata"].setdefault("creationTimestamp", None)
        return obj

    def _after_write(self, rt: ResourceType, old: Obj | None, new: Obj | None) -> None:
        if rt.key == CRDS and self.crds is not None:
            self.crds.on_change(old, new)
        if rt.key == NAMESPACES and old is None and new is not None:
            self._seed_service_account(new["metadata"]["name"])

    async def _create_subresource(self, rt: ResourceType, ns: str, body: Obj, sub: str, ctx: Ctx) -> Obj:
        if rt.key == PODS and sub == "binding":
            name = (body.get("metadata") or {}).get("name")
            if not name:
                raise E.bad_request("Binding has no metadata.name")
            if self.admission is not None:
                await self.admission.mutate(
                    rt, "CREATE", body, None, ns, name, "binding", ctx, kind=("", "v1", "Binding")
                )
            for _ in range(5):
                t = self.table(rt)
                pod = t.get(ns, name)
                if pod is None:
                    raise E.not_found("", "pods", name)
                new = bind(pod, body)
                fieldmanager.record_update(pod, new, ctx.manager(), "v1", "Pod")
                if ctx.dry_run:
                    break
                if t.get(ns, name) is pod:
                    self.store.put(t, new, pod)
                    break
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        if rt.key == SERVICEACCOUNTS and sub == "token":
            name = (body.get("metadata") or {}).get("name") or ""
            sa = self.table(rt).get(ns, name)
            if sa is None:
                raise E.not_found(rt.group, rt.plural, name)
            return self.tokens.request(sa, body)
        if rt.key == PODS and sub == "eviction":
            name = (body.get("metadata") or {}).get("name")
            await self.delete(
                rt,
                name,
                ns,
                ctx=ctx,
                grace_period_seconds=((body.get("deleteOptions") or {}).get("gracePeriodSeconds")),
            )
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        raise E.method_not_allowed(
            f"the server does not allow this method on the requested resource ({rt.plural}/{sub})"
        )

    async def update(
        self,
        key: Key | ResourceType,
        body: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
        ctx: Ctx | None = None,
        name: str | None = None,
    ) -> Obj:
        ctx = ctx or Ctx()
        rt = self.resolve(key)
        ns = self._ns(rt, namespace)
        if subresource == "scale":
            return await self._update_scale(rt, ns, name or body["metadata"]["name"], body, ctx)
        obj = self._check_body(rt, body, ns, copy=not ctx.own_body)
        name = name or obj["metadata"].get("name")
        if not name:
            raise E.bad_request("name is required")
        if obj["metadata"].get("name") and obj["metadata"]["name"] != name:
            raise E.bad_request(
                f"the name of the object ({obj['metadata']['name']}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        return await self._write(rt, ns, name, lambda _cur: obj, subresource, ctx, require_rv=True)

    async def patch(
        self,
        key: Key | ResourceType,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
        ctx: Ctx | None = None,
    ) -> Obj:
        ctx = ctx or Ctx()
        rt = self.resolve(key)
        ns = self._ns(rt, namespace)
        # CRDs have no Go struct to read patch strategies from: the real server refuses strategic merge for them.
        if patch_type not in ("merge", "strategic", "json", "apply") or (
            patch_type == "strategic" and rt.custom
        ):
            raise APIError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        if subresource == "scale":
            cur = await self.get(rt, name, ns, "scale")
            new_scale = self._apply_patch(cur, patch, patch_type, "Scale")
            return await self._update_scale(rt, ns, name, new_scale, ctx)
        if patch_type == "apply":
            return await self._apply(rt, ns, name, patch, subresource, ctx)

        # A merge patch of /status: _write keeps only the patched status (and this metadata) of the result,
        # and changes nothing else in it, so the result may share what the patch leaves alone with the
        # stored object instead of copying all of it.
        shared = patch_type == "merge" and subresource == "status"
        # JSON and merge patches of a resource whose defaulting writes nothing into what a patch leaves
        # alone: the result shares that with the stored object too (its own: the containers on the patch's
        # paths, and the metadata, written in _write)
        shared_main = (
            subresource is None and patch_type in ("json", "merge") and self.strategy(rt).defaults_fill_only
        )
        mf_patched = _touches_managed_fields(patch, patch_type)
        touched = _touched_keys(patch, patch_type)
        # Another patch of /status that reaches nothing but status and metadata, for a strategy whose status
        # writes keep the rest as stored: _write takes the rest from the stored object, so the patch need
        # not copy (or even see) it.
        status_only = (
            subresource == "status"
            and touched is not None
            and touched <= _STATUS_PATCH_KEYS
            and self.strategy(rt).status_update_keeps_rest
        )

        def compute(cur: Obj | None) -> Obj:
            if cur is None:
                raise E.not_found(rt.group, rt.plural, name)
            if shared or (shared_main and patch_type == "merge"):
                new = json_merge_patch_shared(cur, patch)
                if isinstance(new, dict) and new.get("metadata") is cur["metadata"]:
                    new["metadata"] = dict(cur["metadata"])  # written below and in _write
            elif shared_main:
                new = json_patch_shared(cur, patch)
                if isinstance(new, dict) and new.get("metadata") is cur["metadata"]:
                    new["metadata"] = dict(cur["metadata"])  # written below and in _write
            else:
                # every other patch returns a new object of its own (never shares with the stored one)
                base = cur
                if cur["metadata"].get("managedFields") and not mf_patched:
                    # _write gives the result the stored managedFields again (and record_update the
                    # change), so the patch need not copy them: None holds their place in the key order
                    base = dict(cur)
                    base["metadata"] = dict(cur["metadata"])
                    base["metadata"]["managedFields"] = None
                if status_only:
                    base = {k: v for k, v in base.items() if k in _STATUS_PATCH_KEYS}
                new = self._apply_patch(base, patch, patch_type, rt.kind)
            if not isinstance(new, dict):
                raise E.bad_request("patch did not produce an object")
            new.setdefault("metadata", {})
            if new.get("metadata", {}).get("name", name) != name:
                raise E.bad_request("metadata.name may not be changed by a patch")
            new["metadata"]["name"] = name
            if rt.namespaced:
                new["metadata"]["namespace"] = ns
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            return new

        return await self._write(
            rt,
            ns,
            name,
            compute,
            subresource,
            ctx,
            require_rv=False,
            patching=True,
            touched=touched,
            shares=shared or shared_main,
        )

    @staticmethod
    def _apply_patch(base: Obj, patch: Any, patch_type: str, kind: str) -> Any:
        if patch_type == "merge":
            return json_merge_patch(base, patch)
        if patch_type == "strategic":
            return strategic_merge_patch(base, patch, kind)
        if patch_type == "json":
            return json_patch(base, patch)
        raise E.bad_request(f"unsupported patch type {patch_type}")

    async def _apply(
        self, rt: ResourceType, ns: str, name: str, applied: Any, subresource: str | None, ctx: Ctx
    ) -> Obj:
        if not isinstance(applied, dict):
            raise E.bad_request("an apply patch must be an object")
        if not ctx.field_manager:
            raise APIError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        if not ctx.own_body:
            applied = clone(applied)
        if applied.get("apiVersion") != rt.api_version or applied.get("kind") != rt.kind:
            raise E.bad_request(
                f"the API version in the data ({applied.get('apiVersion')}) does not match the expected API version ({rt.api_version})"
                if applied.get("apiVersion") != rt.api_version
                else f"the kind in the data ({applied.get('kind')}) does not match the expected kind ({rt.kind})"
            )
        amd = applied.setdefault("metadata", {})
        if amd.get("name") not in (None, name):
            raise E.bad_request(
                f"the name of the object ({amd.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced:
            if amd.get("namespace") not in (None, "", ns):
                raise E.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
        amd.pop("managedFields", None)
        self._check_types(rt, applied)
        t = self.table(rt)
        if t.get(ns, name) is None:
            if subresource:
                raise E.not_found(rt.group, rt.plural, name)
            obj = fieldmanager.apply(None, applied, ctx.manager(), rt.api_version, rt.kind, ctx.force)
            obj["metadata"]["name"] = name
            if rt.namespaced:
                obj["metadata"]["namespace"] = ns
            body = obj
            self._check_namespace_writable(rt, ns, name)
            strat = self.strategy(rt)
            if rt.key == CRDS and self.crds is not None:
                self.crds.default_crd(body)
            strat.default(body)
            if rt.key == PODS:
                builtin_admission.admit_pod_create(self, body)
            mf = body["metadata"].get("managedFields")
            if self.admission is not None:
                body = await self.admission.mutate(rt, "CREATE", body, None, ns, name, None, ctx)
                strat.default(body)
            body["metadata"]["managedFields"] = mf
            obj = self._finish_create(rt, ns, body, strat, ctx)
            return await self._store_create(rt, ns, obj, ctx)

        def compute(cur: Obj | None) -> Obj:
            if cur is None:
                raise E.not_found(rt.group, rt.plural, name)
            merged = fieldmanager.apply(
                cur, applied, ctx.manager(), rt.api_version, rt.kind, ctx.force, subresource or ""
            )
            merged["metadata"]["name"] = name
            if rt.namespaced:
                merged["metadata"]["namespace"] = ns
            return merged

        return await self._write(
            rt, ns, name, compute, subresource, ctx, require_rv=False, patching=True, applying=True
        )

    async def _write(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        compute: Any,
        subresource: str | None,
        ctx: Ctx,
        require_rv: bool,
        patching: bool = False,
        applying: bool = False,
        touched: frozenset[str] | None = None,
        shares: bool = False,
    ) -> Obj:
        """GuaranteedUpdate: compute the new object from the current one; retry if it changed meanwhile."""
        if subresource not in (None, "", "status") and not (
            rt.key == PODS and subresource in POD_SPEC_SUBRESOURCES
        ):
            raise E.method_not_allowed(
                f"the server does not allow this method on the requested resource ({rt.plural}/{subresource})"
            )
        if subresource == "status" and not rt.has_status:
            raise E.not_found(rt.group, rt.plural, name)
        t = self.table(rt)
        strat = self.strategy(rt)
        for _attempt in range(10):
            cur = t.get(ns, name)
            if cur is None:
                raise E.not_found(rt.group, rt.plural, name)
            new = compute(cur)
            # what the patch did not touch is the stored object's, whose types were checked when it was written
            # (``shares``: the result shares those parts with it, below the top level too)
            if touched is None:
                self._check_types(rt, new)
            elif shares:
                self._check_types(
                    rt, {k: _changed_part(new[k], cur.get(k, _MISSING)) for k in touched if k in new}
                )
            else:
                self._check_types(rt, {k: new[k] for k in touched if k in new})
            md = new.setdefault("metadata", {})
            cmd = cur["metadata"]
            want_rv = md.get("resourceVersion")
            if want_rv and want_rv != cmd["resourceVersion"]:
                if require_rv or patching:
                    raise E.conflict(rt.group, rt.plural, name, E.STALE)
            if md.get("uid") and md["uid"] != cmd["uid"]:
                raise E.conflict(
                    rt.group,
                    rt.plural,
                    name,
                    f"Precondition failed: UID in precondition: {md['uid']}, UID in object meta: {cmd['uid']}",
                )
            # System fields are the server's.
            for k in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if k in cmd:
                    md[k] = cmd[k]
                else:
                    md.pop(k, None)
            md["resourceVersion"] = cmd["resourceVersion"]
            if rt.namespaced:
                md["namespace"] = ns
            if subresource == "status":
                status = new.get("status")
                mf = md.get("managedFields")
                new = _copy_reusing(cur, new, touched, strat.status_update_keeps_rest)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
                if applying:
                    new["metadata"]["managedFields"] = mf
                strat.prepare_status_update(new, cur)
            elif subresource in POD_SPEC_SUBRESOURCES:
                new, sub_errs = spec_subresource_update(subresource, new, cur)
                self._invalid(rt, new, sub_errs)
            else:
                strat.default(new)
                strat.prepare_update(new, cur)
                if rt.has_status:
                    # with a status subresource, the main resource ignores status (and /status the rest)
                    if "status" in cur:
                        new["status"] = cur["status"]
                    else:
                        new.pop("status", None)
            if not applying:
                md2 = new["metadata"]
                md2["managedFields"] = cmd.get("managedFields") or []
                fieldmanager.record_update(
                    cur, new, ctx.manager(), rt.api_version, rt.kind, subresource or ""
                )
            if cmd.get("deletionTimestamp"):
                added = set(new["metadata"].get("finalizers") or []) - set(cmd.get("finalizers") or [])
                if added:
                    raise E.forbidden(
                        rt.group,
                        rt.plural,
                        name,
                        f"no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)!r}",
                    )
            if self.admission is not None and subresource in (None, "", "status"):
                base_rv = cmd["resourceVersion"]
                new = await self.admission.mutate(rt, "UPDATE", new, cur, ns, name, subresource, ctx)
                if subresource != "status":
                    strat.default(new)
                if t.get(ns, name) is not cur:
                    if require_rv and new["metadata"].get("resourceVersion") == base_rv and want_rv:
                        raise E.conflict(rt.group, rt.plural, name, E.STALE)
                    continue
            if (rt.has_generation or rt.custom) and subresource != "status":
                gen = cmd.get("generation", 1)
                if _spec_of(new) != _spec_of(cur):
                    gen += 1
                new["metadata"]["generation"] = gen
            errs: list[tuple[str, str]] = []
            if subresource not in ("status", *POD_SPEC_SUBRESOURCES):
                errs = self._validate_meta(rt, new) + strat.validate_update(new, cur)
                if rt.custom and self.crds is not None:
                    errs += self.crds.validate(rt, new)
                if rt.key == CRDS and self.crds is not None:
                    errs += self.crds.validate_crd(new)
            self._invalid(rt, new, errs)
            if self.admission is not None:
                await self.admission.validate(rt, "UPDATE", new, cur, ns, name, subresource, ctx)
                if t.get(ns, name) is not cur:
                    continue
            new["metadata"]["resourceVersion"] = cmd["resourceVersion"]
            if new == cur:
                return cur  # a no-op update writes nothing and sends no event (etcd3 store GuaranteedUpdate)
            if ctx.dry_run:
                return new
            nmd = new["metadata"]
            if (
                nmd.get("deletionTimestamp")
                and not nmd.get("finalizers")
                and not nmd.get("deletionGracePeriodSeconds")
            ):
                # Store.Update: the last finalizer of an object being deleted is gone -> delete it now.
                final = self.store.remove(t, new)
                self._after_write(rt, cur, None)
                return final
            stored = self.store.put(t, new, cur)
            self._after_write(rt, cur, stored)
            return stored
        raise E.conflict(rt.group, rt.plural, name, E.STALE)

    # ----- scale subresource (autoscaling/v1 Scale)
    def _scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        if "scale" not in rt.subresources:
            raise E.not_found(rt.group, rt.plural, obj["metadata"]["name"])
        md = obj["metadata"]
        sel = (obj.get("spec") or {}).get("selector") or {}
        if rt.key != REPLICATIONCONTROLLERS:  # a ReplicationController's selector is a plain map
            sel = sel.get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: md[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in md
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sel.items()),
            },
        }

    async def _update_scale(self, rt: ResourceType, ns: str, name: str, scale: Obj, ctx: Ctx) -> Obj:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise E.invalid(
                "autoscaling",
                "Scale",
                name,
                [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
            )

        def compute(cur: Obj | None) -> Obj:
            new = clone(cur)
            new["spec"]["replicas"] = replicas
            rv = (scale.get("metadata") or {}).get("resourceVersion")
            if rv:
                new["metadata"]["resourceVersion"] = rv
            return new

        obj = await self._write(rt, ns, name, compute, None, ctx, require_rv=True)
        return self._scale_of(rt, obj)

    # ----- delete
    async def delete(
        self,
        key: Key | ResourceType,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        ctx: Ctx | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        ctx = ctx or Ctx()
        rt = self.resolve(key)
        ns = self._ns(rt, namespace)
        t = self.table(rt)
        cur = t.get(ns, name)
        if cur is None:
            raise E.not_found(rt.group, rt.plural, name)
        cmd = cur["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != cmd["uid"]:
                raise E.conflict(
                    rt.group,
                    rt.plural,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {cmd['uid']}",
                )
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != cmd["resourceVersion"]
            ):
                raise E.conflict(
                    rt.group,
                    rt.plural,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, ResourceVersion in object meta: {cmd['resourceVersion']}",
                )
        if propagation_policy not in (None, "", "Background", "Foreground", "Orphan"):
            raise E.invalid(
                "", "DeleteOptions", "", [("propagationPolicy", f'Unsupported value: "{propagation_policy}"')]
            )
        if self.admission is not None:
            await self.admission.validate(rt, "DELETE", None, cur, ns, name, None, ctx)
        if rt.key == NAMESPACES:
            return self._delete_namespace(t, cur, ctx)
        policy = propagation_policy or self._default_gc_policy(rt)
        grace = self.strategy(rt).graceful_delete_seconds(cur, grace_period_seconds)
        finalizers = list(cmd.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if ctx.dry_run:
            return self._out(rt, cur)
        if policy == "Orphan":
            self._orphan_dependents(cmd["uid"], ns if rt.namespaced else None)
        if not finalizers and grace == 0:
            final = self.store.remove(t, cur)
            self._after_write(rt, cur, None)
            return self._out(rt, final)
        if cmd.get("deletionTimestamp") and finalizers == list(cmd.get("finalizers") or []):
            if grace >= (cmd.get("deletionGracePeriodSeconds") or 0):
                return self._out(rt, cur)
        new = dict(cur)
        md = new["metadata"] = dict(cmd)
        md["finalizers"] = finalizers
        if not finalizers:
            md.pop("finalizers")
        md.setdefault("deletionTimestamp", _rfc3339_in(grace))
        md["deletionGracePeriodSeconds"] = grace
        stored = self.store.put(t, new, cur)
        if grace > 0 and not finalizers:
            self._spawn(self._finish_graceful(rt, ns, name, cmd["uid"], grace))
        return self._out(rt, stored)

    def _default_gc_policy(self, rt: ResourceType) -> str:
        # batch/v1 Jobs orphan their pods by default (job strategy DefaultGarbageCollectionPolicy).
        if rt.key[:1] == ("batch",) and rt.plural == "jobs":
            return "Orphan"
        return "Background"

    def _orphan_dependents(self, owner_uid: str, ns: str | None) -> None:
        """What the garbage collector does for propagationPolicy=Orphan: drop the ownerReference."""
        for t in self.store.tables.values():
            buckets = [t.by_ns.get(ns, {})] if ns is not None else list(t.by_ns.values())
            for bucket in buckets:
                for obj in list(bucket.values()):
                    refs = obj["metadata"].get("ownerReferences")
                    if refs and any(r.get("uid") == owner_uid for r in refs):
                        new = dict(obj)
                        new["metadata"] = dict(obj["metadata"])
                        kept = [r for r in refs if r.get("uid") != owner_uid]
                        if kept:
                            new["metadata"]["ownerReferences"] = kept
                        else:
                            del new["metadata"]["ownerReferences"]
                        self.store.put(t, new, obj)

    async def _finish_graceful(self, rt: ResourceType, ns: str, name: str, uid: str, grace: int) -> None:
        """Fallback for a terminating pod no kubelet finishes: delete it when its grace period is over."""
        delay = grace if self.terminating_pod_timeout is None else min(grace, self.terminating_pod_timeout)
        await asyncio.sleep(delay)
        t = self.table(rt)
        cur = t.get(ns, name)
        if cur is not None and cur["metadata"]["uid"] == uid and not cur["metadata"].get("finalizers"):
            self.store.remove(t, cur)

    def _delete_namespace(self, t: Table, cur: Obj, ctx: Ctx) -> Obj:
        name = cur["metadata"]["name"]
        if ctx.dry_run or cur["metadata"].get("deletionTimestamp"):
            return cur
        new = clone(cur)
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["status"] = {"phase": "Terminating"}
        stored = self.store.put(t, new, cur)
        self._spawn(self._empty_namespace(name))
        return stored

    async def _empty_namespace(self, ns: str) -> None:
        """The namespace controller: delete everything in it, then drop the "kubernetes" finalizer."""
        while True:
            remaining = 0
            for rt in self.registry.all():
                if not rt.namespaced:
                    continue
                t = self.table(rt)
                for obj in list(t.by_ns.get(ns, {}).values()):
                    remaining += 1
                    if not obj["metadata"].get("deletionTimestamp"):
                        try:
                            await self.delete(
                                rt, obj["metadata"]["name"], ns, propagation_policy="Background"
                            )
                        except APIError:
                            pass
            # registry may hold several versions of one table; count what is really left
            left = sum(
                len(t.by_ns.get(ns, {})) for (g, p), t in self.store.tables.items() if self._namespaced(g, p)
            )
            if left == 0:
                break
            await asyncio.sleep(0.1 if remaining else 0.5)
        t = self.store.table("", "namespaces")
        cur = t.get("", ns)
        if cur is not None:
            self.store.remove(t, cur)

    def _namespaced(self, group: str, plural: str) -> bool:
        return any(rt.namespaced for rt in self.registry.all() if rt.group == group and rt.plural == plural)

    async def delete_collection(
        self,
        key: Key | ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        ctx: Ctx | None = None,
    ) -> Obj:
        lst = await self.list(key, namespace, label_selector, field_selector)
        rt = self.resolve(key)
        out = []
        for o in lst["items"]:
            try:
                out.append(
                    await self.delete(
                        rt,
                        o["metadata"]["name"],
                        o["metadata"].get("namespace"),
                        propagation_policy,
                        grace_period_seconds,
                        ctx,
                    )
                )
            except APIError as e:
                if e.code != 404:
                    raise
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": out,
        }

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except BaseException:
                pass


def _touched_keys(patch: Any, patch_type: str) -> frozenset[str] | None:
    """The top-level keys a patch may change (None: it may change anything, or it cannot be told)."""
    if patch_type in ("merge", "strategic") and isinstance(patch, dict):
        if patch_type == "strategic" and any(isinstance(k, str) and k.startswith("$") for k in patch):
            return None  # top-level directives ($patch, $retainKeys, ...) reach every key
        return frozenset(patch)
    if patch_type == "json" and isinstance(patch, list):
        keys = set()
        for op in patch:
            if not isinstance(op, dict):
                return None
            for where in (op.get("path"), op.get("from")):
                if where is None:
                    continue
                if not isinstance(where, str) or not where.startswith("/"):
                    return None
                keys.add(where[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~"))
        return frozenset(keys)
    return None


def _touches_managed_fields(patch: Any, patch_type: str) -> bool:
    """Whether a patch may read or write metadata.managedFields (True when it cannot be told)."""
    if patch_type in ("merge", "strategic"):
        if not isinstance(patch, dict) or any(isinstance(k, str) and k.startswith("$") for k in patch):
            return True
        md = patch.get("metadata", {})
        if not isinstance(md, dict):
            return True  # metadata replaced or removed as a whole
        return "managedFields" in md or any(isinstance(k, str) and k.startswith("$") for k in md)
    if patch_type == "json" and isinstance(patch, list):
        for op in patch:
            if not isinstance(op, dict):
                return True
            for key in ("path", "from"):
                where = op.get(key)
                if where is None and key == "from":
                    continue
                if not isinstance(where, str) or where in ("", "/metadata"):
                    return True
                if where.startswith("/metadata/managedFields"):
                    return True
        return False
    return True


def _copy_reusing(cur: Obj, private: Obj, touched: frozenset[str] | None, share_rest: bool = False) -> Obj:
    """A copy of ``cur`` for a status write, whose status the caller replaces (not copied here; its place
    in the key order is kept). Takes from ``private`` (a patched copy of ``cur``: its own copy or sharing
    with ``cur``, see Engine.patch) the top-level values the patch did not touch (``touched``: the
    top-level keys it may have changed; None: any) and that are still equal: those are exact copies
    already (same types, same order), and comparing costs much less than copying again. ``share_rest``:
    what is neither status nor metadata is taken from ``cur`` as it is (the strategy's status writes never
    change it). A copied metadata shares ``cur``'s managedFields list, which the write replaces and never
    changes."""
    out = {}
    for k, v in cur.items():
        if k == "status":
            out[k] = None
            continue
        if share_rest and k != "metadata":
            out[k] = v
            continue
        mine = private.get(k, _MISSING) if touched is not None and k not in touched else _MISSING
        if mine is not _MISSING and mine == v:
            out[k] = mine
        elif k == "metadata" and type(v) is dict:
            out[k] = {mk: mv if mk == "managedFields" else clone(mv) for mk, mv in v.items()}
        else:
            out[k] = clone(v)
    return out


_MISSING: Any = object()


def _changed_part(new: Any, old: Any) -> Any:
    """``new`` without the values of its objects that are ``old``'s very values (shared with the stored
    object, checked when it was written): what a type check of a patched object still has to look at, at
    the same paths and in the same order."""
    if type(new) is not dict or type(old) is not dict:
        return new
    return {
        k: _changed_part(v, old.get(k, _MISSING)) for k, v in new.items() if v is not old.get(k, _MISSING)
    }


_STATUS_PATCH_KEYS = frozenset({"status", "metadata", "apiVersion", "kind"})


def _spec_of(obj: Obj) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _rfc3339_in(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
