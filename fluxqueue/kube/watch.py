"""List-then-watch loops with a local cache (an informer), surviving disconnects and 410 Gone.

Like client-go's reflector and kopf's watcher: list to get a consistent snapshot and a resourceVersion, watch
from there, and when the server says the version is too old (410) list again and report the differences as
events, so a handler never misses a deletion. Handlers receive ``(type, obj, old)``; for deletions ``obj`` is
the last state we saw (never a tombstone placeholder).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fluxqueue.kube.client import APIError, Key, object_key
from fluxqueue.log import get_logger

log = get_logger(__name__)

Handler = Callable[[str, dict, dict | None], Awaitable[None] | None]
# An index function: the index values an object is filed under (client-go's IndexFunc).
IndexFunc = Callable[[dict], Iterable[str]]
# What of each object to keep (client-go's TransformFunc), applied before it is cached or handled.
Transform = Callable[[dict], dict]


def strip_managed_fields(obj: dict) -> dict:
    """Drop ``metadata.managedFields``: about half of a pod's JSON objects, never read by a controller
    (kube-scheduler's informers strip them too: client-go ``cache.TransformStripManagedFields``). At
    thousands of cached pods it is most of the heap the garbage collector walks."""
    meta = obj.get("metadata")
    if meta and "managedFields" in meta:
        meta.pop("managedFields")
    return obj


def metadata_only(obj: dict) -> dict:
    """Keep only what says an object exists and who owns it (like a PartialObjectMetadata watch)."""
    meta = obj.get("metadata") or {}
    keep = ("name", "namespace", "uid", "resourceVersion", "ownerReferences", "deletionTimestamp", "labels")
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in keep if k in meta},
    }


class Informer:
    def __init__(
        self,
        client: Any,
        key: Key,
        handler: Handler | None = None,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        backoff: float = 1.0,
        indexers: dict[str, IndexFunc] | None = None,
        transform: Transform | None = None,
        queue_until_handler: bool = False,
    ):
        self.client = client
        self.key = key
        self._handler = handler
        self._handler_set = asyncio.Event()
        # Changes after the first listing are kept for a handler set later (see _emit).
        self._queue_until_handler = queue_until_handler
        if handler is not None:
            self._handler_set.set()
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, dict] = {}
        # Secondary indices kept with the cache (client-go's Indexer): name -> value -> {cache key: object},
        # so "the pods of this unit" is a dictionary lookup, not a walk of every cached pod.
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._indices: dict[str, dict[str, dict[str, dict]]] = {name: {} for name in self._indexers}
        self.transform = transform
        self.synced = asyncio.Event()
        self.relists = 0
        self._backoff = backoff
        self._rv: str | None = None
        self._events: asyncio.Queue[tuple[str, dict, dict | None]] = asyncio.Queue()

    def get(self, namespace: str | None, name: str) -> dict | None:
        return self.cache.get(f"{namespace}/{name}" if namespace else name)

    def items(self) -> list[dict]:
        return list(self.cache.values())

    def by_index(self, name: str, value: str) -> list[dict]:
        """Cached objects filed under ``value`` by the indexer ``name``."""
        return list(self._indices[name].get(value, {}).values())

    def _put(self, k: str, obj: dict, old: dict | None) -> None:
        self.cache[k] = obj
        if self._indexers:
            if old is not None:
                self._unindex(k, old)
            for name, fn in self._indexers.items():
                index = self._indices[name]
                for value in fn(obj):
                    index.setdefault(value, {})[k] = obj

    def _drop(self, k: str) -> None:
        old = self.cache.pop(k, None)
        if old is not None and self._indexers:
            self._unindex(k, old)

    def _unindex(self, k: str, old: dict) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(old):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.pop(k, None)
                    if not bucket:
                        del index[value]

    @property
    def handler(self) -> Handler | None:
        return self._handler

    @handler.setter
    def handler(self, handler: Handler | None) -> None:
        self._handler = handler
        if handler is not None:
            self._handler_set.set()

    async def _emit(self, kind: str, obj: dict, old: dict | None) -> None:
        # The cache is already current; the handler runs in its own task, in event order, so a slow handler
        # never holds back the watch stream (and every decision reads a fresh cache, not a backlog).
        # With ``queue_until_handler`` and no handler yet, the first listing is not queued (whoever sets the
        # handler reads the synced cache first) but every later change is: a controller that sets its
        # handlers after a start-up sweep must not miss what changed during the sweep (it did: pods created
        # meanwhile waited for the next periodic sweep).
        if self._handler is not None or (self._queue_until_handler and self.synced.is_set()):
            self._events.put_nowait((kind, obj, old))

    @property
    def backlog(self) -> int:
        return self._events.qsize()

    async def _dispatch(self) -> None:
        while True:
            kind, obj, old = await self._events.get()
            await self._handler_set.wait()
            handler = self._handler
            if handler is None:
                continue
            try:
                result = handler(kind, obj, old)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "watch handler failed", resource=self.key[2], object=object_key(obj), event=kind
                )

    async def _relist(self) -> None:
        listing = await self.client.list(
            self.key,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.relists += 1
        items = listing.get("items", [])
        if self.transform is not None:
            items = [self.transform(o) for o in items]
        fresh = {object_key(o): o for o in items}
        self._rv = listing.get("metadata", {}).get("resourceVersion")
        previous, self.cache = self.cache, {}
        self._indices = {name: {} for name in self._indexers}
        for k, obj in fresh.items():
            self._put(k, obj, None)
        for k, obj in fresh.items():
            old = previous.get(k)
            if old is None:
                await self._emit("ADDED", obj, None)
            elif old.get("metadata", {}).get("resourceVersion") != obj.get("metadata", {}).get(
                "resourceVersion"
            ):
                await self._emit("MODIFIED", obj, old)
        for k, old in previous.items():
            if k not in fresh:
                await self._emit("DELETED", old, old)
        self.synced.set()

    async def run(self) -> None:
        """Run until cancelled."""
        dispatcher = asyncio.create_task(self._dispatch(), name=f"dispatch-{self.key[2]}")
        try:
            await self._watch_forever()
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher

    async def _watch_forever(self) -> None:
        while True:
            try:
                if self._rv is None:
                    await self._relist()
                async for event in self.client.watch(
                    self.key,
                    namespace=self.namespace,
                    resource_version=self._rv,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                ):
                    obj = event.get("object") or {}
                    if self.transform is not None and event.get("type") != "BOOKMARK":
                        obj = self.transform(obj)
                    rv = obj.get("metadata", {}).get("resourceVersion")
                    if rv:
                        self._rv = rv
                    kind = event.get("type")
                    if kind == "BOOKMARK":
                        continue
                    k = object_key(obj)
                    old = self.cache.get(k)
                    if kind == "DELETED":
                        self._drop(k)
                        await self._emit("DELETED", obj, old)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._put(k, obj, old)
                        await self._emit("ADDED" if old is None else "MODIFIED", obj, old)
            except asyncio.CancelledError:
                raise
            except APIError as exc:
                if exc.code == 410:
                    log.info("watch expired; relisting", resource=self.key[2])
                    self._rv = None
                    continue
                log.warning("watch interrupted; retrying", resource=self.key[2], error=str(exc))
                if exc.code >= 500 or exc.code == 429:
                    await asyncio.sleep(self._backoff)
                else:
                    self._rv = None
                    await asyncio.sleep(self._backoff)
            except Exception as exc:
                log.warning("watch failed; relisting", resource=self.key[2], error=repr(exc))
                self._rv = None
                await asyncio.sleep(self._backoff)
            else:
                continue  # the server ended the stream (timeoutSeconds): resume from the last version


async def stop_task(task: asyncio.Task | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
