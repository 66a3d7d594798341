"""The machinery every simulated controller shares: informers (list + watch into a cache) and work queues.

Shaped like client-go: an :class:`Informer` keeps a cache of one resource type fed by a watch (relisting
after 410 Gone), with indexes and change handlers; a :class:`WorkQueue` holds keys, never the same key
twice, and never hands a key to two workers at once (client-go workqueue's dirty/processing sets). A
:class:`Controller` drains its queue with a reconcile function, requeueing failed keys with backoff.

Controllers read only from informer caches and act only through ``api.client``, so every write they make
passes admission and the API's rules exactly like a real controller's request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError

from ..clock import Timers

log = get_logger(__name__)

Obj = dict[str, Any]
Handler = Callable[[str, Obj | None, Obj | None], None]  # (type, old, new); new None on delete
IndexFunc = Callable[[Obj], Iterable[str]]


def obj_key(obj: Obj) -> tuple[str, str]:
    md = obj["metadata"]
    return (md.get("namespace") or "", md["name"])


def rv_of(obj: Obj | None) -> int:
    if obj is None:
        return -1
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    """The ownerReference with controller=true (metav1.GetControllerOf)."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def controller_uid(obj: Obj) -> str | None:
    ref = controller_ref(obj)
    return ref.get("uid") if ref else None


def owner_uids(obj: Obj) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or () if r.get("uid")]


class Informer:
    """A cache of one resource type, kept current by list + watch. Objects in it must be treated read-only.

    With ``engine`` (the emulator's request pipeline, ``api.engine``) the informer lists and watches the
    stored objects themselves instead of the client's per-event copies: reads involve no admission, so
    nothing changes but the cost (no deep copy per event: 5,000 nodes / 50,000 pods ran at 525 pods/s
    instead of 362 on the same machine). The cache is then shared with the API server's storage, which
    never mutates a stored object; neither may we."""

    def __init__(self, client: Any, key: tuple[str, str, str], name: str = "", engine: Any = None):
        self.client = client
        self.engine = engine
        self.key = key
        self.name = name or key[2]
        self.cache: dict[tuple[str, str], Obj] = {}
        self._handlers: list[Handler] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[tuple[str, str]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    def add_handler(self, fn: Handler) -> None:
        self._handlers.append(fn)

    def remove_handler(self, fn: Handler) -> None:
        if fn in self._handlers:
            self._handlers.remove(fn)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        if name in self._index_funcs:
            return  # shared informers: the first registration of an index name wins
        self._index_funcs[name] = fn
        idx: dict[str, set[tuple[str, str]]] = {}
        for k, obj in self.cache.items():
            for v in fn(obj):
                idx.setdefault(v, set()).add(k)
        self._indexes[name] = idx

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indexes[name].get(value) or ()
        return [self.cache[k] for k in keys if k in self.cache]

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get((namespace or "", name))

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    # ----- cache maintenance
    def _reindex(self, k: tuple[str, str], old: Obj | None, new: Obj | None) -> None:
        for name, fn in self._index_funcs.items():
            idx = self._indexes[name]
            old_vals = set(fn(old)) if old is not None else set()
            new_vals = set(fn(new)) if new is not None else set()
            for v in old_vals - new_vals:
                s = idx.get(v)
                if s is not None:
                    s.discard(k)
                    if not s:
                        del idx[v]
            for v in new_vals - old_vals:
                idx.setdefault(v, set()).add(k)

    def _apply(self, typ: str, obj: Obj) -> None:
        k = obj_key(obj)
        old = self.cache.get(k)
        if typ == "DELETED":
            if old is None:
                return  # already gone (we observed our own delete)
            if old["metadata"].get("uid") != obj["metadata"].get("uid") and rv_of(old) > rv_of(obj):
                return  # a newer object of the same name already replaced it
            del self.cache[k]
            self._reindex(k, old, None)
            self._notify("DELETED", old, None)
            return
        if old is not None and rv_of(old) >= rv_of(obj):
            return  # we already know this version (observed from our own write) or a newer one
        self.cache[k] = obj
        self._reindex(k, old, obj)
        self._notify("MODIFIED" if old is not None else "ADDED", old, obj)

    def observe(self, obj: Obj | None) -> None:
        """Feed the result of one of our own writes, so the next decision does not act on a stale cache."""
        if obj and obj.get("metadata", {}).get("resourceVersion"):
            self._apply("MODIFIED", obj)

    def observe_deleted(self, obj: Obj) -> None:
        """A write that removed the object for good (delete answered without deletionTimestamp/finalizers)."""
        md = obj.get("metadata") or {}
        if not md.get("deletionTimestamp") and not md.get("finalizers"):
            self._apply("DELETED", obj)
        else:
            self.observe(obj)

    def _notify(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        for fn in self._handlers:
            try:
                fn(typ, old, new)
            except Exception:
                log.exception("informer handler failed", resource=self.name)

    # ----- list + watch
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"informer-{self.name}")
        await self.synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _relist(self) -> str:
        lst = await (self.engine or self.client).list(self.key)
        seen = set()
        for obj in lst["items"]:
            seen.add(obj_key(obj))
            self._apply("MODIFIED", obj)
        for k in [k for k in self.cache if k not in seen]:
            self._apply("DELETED", self.cache[k])
        return lst["metadata"]["resourceVersion"]

    async def _run(self) -> None:
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    rv = await self._relist()
                    self.synced.set()
                async for typ, obj in self._events(rv):
                    if typ != "BOOKMARK":
                        self._apply(typ, obj)
                    rv = obj["metadata"].get("resourceVersion") or rv
            except asyncio.CancelledError:
                raise
            except APIError as exc:
                if exc.code == 410:
                    rv = None  # too old: relist, as a reflector does
                    continue
                if exc.code == 404:
                    # the type is not served (yet), e.g. a CRD not created: look again later
                    self.synced.set()
                    rv = None
                    await asyncio.sleep(2.0)
                    continue
                log.warning("informer watch failed", resource=self.name, error=str(exc))
                rv = None
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("informer failed", resource=self.name)
                rv = None
                await asyncio.sleep(0.5)

    async def _events(self, rv: str | None):
        if self.engine is None:
            async for ev in self.client.watch(self.key, resource_version=rv, allow_bookmarks=True):
                yield ev["type"], ev["object"]
            return
        stream = await self.engine.watch(self.key, None, rv, None, None, True)
        try:
            async for typ, obj, _shared_event in stream:
                yield typ, obj
        finally:
            await stream.aclose()


class WorkQueue:
    """Keys to reconcile: deduplicated, one worker per key at a time (client-go workqueue semantics)."""

    def __init__(self, timers: Timers):
        self._timers = timers
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, sim_seconds: float) -> None:
        if sim_seconds <= 0:
            self.add(key)
        else:
            self._timers.after(sim_seconds, self.add, key)

    def add_rate_limited(self, key: Hashable) -> None:
        """Exponential per-key backoff in simulated seconds (client-go: 5 ms doubling, capped at 1000 s)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(0.005 * 2**n, 1000.0))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return len(self._dirty)


class Controller:
    """A work queue drained by ``workers`` tasks calling :meth:`reconcile`."""

    name = "controller"
    workers = 1

    def __init__(self, client: Any, timers: Timers):
        self.client = client
        self.timers = timers
        self.queue = WorkQueue(timers)
        self._tasks: list[asyncio.Task[None]] = []

    async def reconcile(self, key: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.workers):
            self._tasks.append(loop.create_task(self._worker(), name=f"{self.name}-{i}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except APIError as exc:
                if exc.code not in (404, 409):
                    log.warning("reconcile failed", controller=self.name, key=str(key), error=str(exc))
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("reconcile failed", controller=self.name, key=str(key))
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)


def _controller_uid_index(obj: Obj) -> list[str]:
    uid = controller_uid(obj)
    return [uid] if uid else []


class OwnerController(Controller):
    """A controller of one kind of owner (ReplicaSet, Deployment, StatefulSet, DaemonSet) whose children
    point back at it with a controller ownerReference.

    A change to an owner enqueues it; a change to a child enqueues its controlling owner, as the real
    controllers' add/update/deletePod handlers do (resolveControllerRef: owners are matched by uid, so a
    child of a deleted-and-recreated owner of the same name wakes nobody). Children are found through the
    ``controller-uid`` index of the children's informer."""

    owner_resource: tuple[str, str, str]  # where status is written
    child_resource: tuple[str, str, str]  # what delete_child deletes

    def __init__(self, client: Any, timers: Timers, owners: Informer, children: Informer):
        super().__init__(client, timers)
        self.owners, self.children = owners, children
        children.add_index("controller-uid", _controller_uid_index)
        self._by_uid: dict[str, tuple[str, str]] = {}  # owner uid -> (namespace, name)
        owners.add_handler(self._on_owner)
        children.add_handler(self._on_child)

    def owned(self, owner: Obj) -> list[Obj]:
        return self.children.by_index("controller-uid", owner["metadata"]["uid"])

    def _on_owner(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is None:
            return
        md = obj["metadata"]
        if new is None:
            self._by_uid.pop(md["uid"], None)
        else:
            self._by_uid[md["uid"]] = (md.get("namespace", ""), md["name"])
        self.queue.add((md.get("namespace", ""), md["name"]))

    def _on_child(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        key = self._by_uid.get((controller_uid(obj) if obj else None) or "")
        if key is not None:
            self.queue.add(key)

    async def delete_child(self, child: Obj) -> bool:
        """Delete one child; False when it was already gone (404 is not an error for a controller)."""
        md = child["metadata"]
        try:
            out = await self.client.delete(self.child_resource, md["name"], namespace=md.get("namespace"))
        except APIError as exc:
            if exc.code != 404:
                raise
            return False
        self.children.observe_deleted(out)
        return True

    async def write_status(self, owner: Obj, status: Obj) -> None:
        """Write ``status`` through the status subresource when it differs from what the owner has."""
        if status == (owner.get("status") or {}):
            return
        body = dict(owner)
        body["status"] = status
        ns = owner["metadata"].get("namespace")
        self.owners.observe(
            await self.client.update(self.owner_resource, body, namespace=ns, subresource="status")
        )
