"""In-memory storage: objects per type, one monotonic resourceVersion, bounded event history, watch fan-out.

Stored objects are never mutated after they are committed: an update stores a new dict. That lets the event
history and every watcher share one object (and, for HTTP watchers, one serialized line per event) instead
of copying per watcher. Readers that hand objects to callers copy them (:func:`clone`).

Watch semantics follow the apiserver watch cache (k8s.io/apiserver/pkg/storage/cacher): a watch from
resourceVersion N replays the events after N that are still in the bounded history, and a version older
than the history answers 410 Gone "too old resource version"; with a selector, an object that stops matching
is sent as DELETED and one that starts matching as ADDED.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import APIError, gone
from .selection import Requirement, labels_match

Obj = dict[str, Any]

try:  # orjson is much faster for the watch/list hot paths; plain json works the same way.
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


def clone(o: Any) -> Any:
    """Deep copy of a JSON-like value (several times faster than copy.deepcopy)."""
    t = type(o)
    if t is dict:
        return {k: clone(v) for k, v in o.items()}
    if t is list:
        return [clone(v) for v in o]
    return o


@dataclass(slots=True)
class Event:
    rv: int
    type: str  # ADDED MODIFIED DELETED
    obj: Obj
    old: Obj | None
    _line: bytes | None = None

    def line(self) -> bytes:
        """The event as one JSON line for HTTP watch streams, serialized once for all watchers."""
        if self._line is None:
            # the same bytes as dumps({"type": ..., "object": ...}), built so that obj_json() can cut the
            # object back out of them
            self._line = _PREFIX[self.type] + dumps(self.obj) + b"}\n"
        return self._line

    def obj_json(self) -> bytes:
        """The object's JSON: the one in line(), which the event's watchers write too."""
        return self.line()[len(_PREFIX[self.type]) : -2]


_PREFIX = {t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED")}


WatchItem = tuple[str, Obj, Event | None]  # (type as this watcher sees it, object, shared event or None)


@dataclass(eq=False)
class Watcher:
    namespace: str | None
    labels: list[Requirement]
    fields: Callable[[Obj], bool] | None
    queue: asyncio.Queue[WatchItem] = field(default_factory=asyncio.Queue)
    closed: bool = False
    # the watcher writes Event.line() (an HTTP watch), so a write's answer may share those bytes
    lines: bool = False
    # spec.nodeName=X watchers (one per kubelet) are indexed by X, so an event is offered only to the
    # watchers of the nodes it concerns instead of to thousands of kubelets.
    node_key: str | None = None

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        md = obj["metadata"]
        if self.namespace is not None and md.get("namespace") != self.namespace:
            return False
        if self.labels and not labels_match(self.labels, md.get("labels")):
            return False
        return not (self.fields is not None and not self.fields(obj))

    def offer(self, ev: Event) -> None:
        new_ok = self.matches(ev.obj)
        if ev.type == "ADDED":
            if new_ok:
                self.queue.put_nowait(("ADDED", ev.obj, ev))
        elif ev.type == "DELETED":
            if new_ok:
                self.queue.put_nowait(("DELETED", ev.obj, ev))
        else:
            old_ok = self.matches(ev.old) if ev.old is not None else new_ok
            if new_ok and old_ok:
                self.queue.put_nowait(("MODIFIED", ev.obj, ev))
            elif new_ok:
                self.queue.put_nowait(("ADDED", ev.obj, None))
            elif old_ok:
                self.queue.put_nowait(("DELETED", ev.obj, None))


class Table:
    """The objects of one resource type, their recent events and their watchers."""

    def __init__(self, history: int, index_node: bool = False):
        self.by_ns: dict[str, dict[str, Obj]] = {}
        self.history: deque[Event] = deque(maxlen=history)
        self.compacted_rv = 0  # events at or below this version have left the history
        self.watchers: set[Watcher] = set()
        self.node_watchers: dict[str, set[Watcher]] = {}
        self.line_watchers = 0  # watchers that write Event.line()
        # pods by spec.nodeName, so kubelets and "pods on node X" lists do not scan 50,000 pods
        self.node_index: dict[str, dict[tuple[str, str], Obj]] | None = {} if index_node else None
        self.count = 0
        self.last_rv = 0  # the version of its latest write (what caches of its content compare)

    def get(self, ns: str, name: str) -> Obj | None:
        bucket = self.by_ns.get(ns)
        return bucket.get(name) if bucket else None

    def _index(self, obj: Obj, add: bool) -> None:
        if self.node_index is None:
            return
        node = (obj.get("spec") or {}).get("nodeName")
        if not node:
            return
        md = obj["metadata"]
        k = (md.get("namespace", ""), md["name"])
        if add:
            self.node_index.setdefault(node, {})[k] = obj
        else:
            bucket = self.node_index.get(node)
            if bucket is not None:
                bucket.pop(k, None)
                if not bucket:
                    del self.node_index[node]

    def record(self, ev: Event) -> None:
        self.last_rv = ev.rv
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(ev)
        for w in self.watchers:
            w.offer(ev)
        if self.node_watchers:
            nodes = {_node_of(ev.obj)}
            if ev.old is not None:
                nodes.add(_node_of(ev.old))
            for n in nodes:
                for w in self.node_watchers.get(n, ()):
                    w.offer(ev)

    def add_watcher(self, w: Watcher) -> None:
        if w.lines:
            self.line_watchers += 1
        if w.node_key is not None and self.node_index is not None:
            self.node_watchers.setdefault(w.node_key, set()).add(w)
        else:
            self.watchers.add(w)

    def remove_watcher(self, w: Watcher) -> None:
        if w.lines and not w.closed:
            self.line_watchers -= 1
        w.closed = True
        self.watchers.discard(w)
        if w.node_key is not None:
            bucket = self.node_watchers.get(w.node_key)
            if bucket is not None:
                bucket.discard(w)
                if not bucket:
                    del self.node_watchers[w.node_key]


class Store:
    def __init__(self, history: int = 10_000):
        self._history = history
        self.tables: dict[tuple[str, str], Table] = {}  # by (group, plural): versions share storage
        self.rv = 1
        self._last: tuple[Table, Event] | None = None  # the latest write, for encoded()

    def table(self, group: str, plural: str) -> Table:
        t = self.tables.get((group, plural))
        if t is None:
            t = self.tables[(group, plural)] = Table(
                self._history, index_node=(group, plural) == ("", "pods")
            )
        return t

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    # Writes. Callers pass a fully prepared object; the store only assigns the resourceVersion.
    def put(self, t: Table, obj: Obj, old: Obj | None) -> Obj:
        rv = self.next_rv()
        md = obj["metadata"]
        md["resourceVersion"] = str(rv)
        ns, name = md.get("namespace", ""), md["name"]
        bucket = t.by_ns.setdefault(ns, {})
        if old is not None:
            t._index(old, add=False)
        else:
            t.count += 1
        bucket[name] = obj
        t._index(obj, add=True)
        ev = Event(rv, "MODIFIED" if old is not None else "ADDED", obj, old)
        t.record(ev)
        self._last = (t, ev)
        return obj

    def remove(self, t: Table, old: Obj) -> Obj:
        rv = self.next_rv()
        md = old["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        bucket = t.by_ns.get(ns)
        if bucket is not None and bucket.pop(name, None) is not None:
            t.count -= 1
            if not bucket:
                del t.by_ns[ns]
        t._index(old, add=False)
        # The DELETED event carries the last state with the deletion's resourceVersion, as etcd3 watch does.
        final = dict(old)
        final["metadata"] = dict(md)
        final["metadata"]["resourceVersion"] = str(rv)
        ev = Event(rv, "DELETED", final, old)
        t.record(ev)
        self._last = (t, ev)
        return final

    def encoded(self, obj: Obj) -> bytes:
        """``dumps(obj)``; when ``obj`` is what the latest write stored and HTTP watchers will write that
        event, the bytes of its watch line (the object is serialized once, for the answer and the watchers)."""
        last = self._last
        if last is not None and last[1].obj is obj and last[0].line_watchers:
            return last[1].obj_json()
        return dumps(obj)

    # Reads.
    def candidates(self, t: Table, namespace: str | None, node_name: str | None) -> list[Obj]:
        if node_name is not None and t.node_index is not None:
            objs = list(t.node_index.get(node_name, {}).values())
            if namespace is not None:
                objs = [o for o in objs if o["metadata"].get("namespace") == namespace]
            return objs
        if namespace is not None:
            return list(t.by_ns.get(namespace, {}).values())
        out: list[Obj] = []
        for bucket in t.by_ns.values():
            out.extend(bucket.values())
        return out

    def list(
        self,
        t: Table,
        namespace: str | None,
        labels: list[Requirement],
        fields: Callable[[Obj], bool] | None,
        node_name: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[Obj], str, str | None, int | None]:
        """(items, resourceVersion, continue token, remainingItemCount)."""
        objs = self.candidates(t, namespace, node_name)
        if labels:
            objs = [o for o in objs if labels_match(labels, o["metadata"].get("labels"))]
        if fields is not None:
            objs = [o for o in objs if fields(o)]
        # etcd answers in key order (namespace, then name); clients print in that order.
        objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if continue_token:
            start = decode_continue(continue_token)
            objs = [o for o in objs if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
        token = None
        remaining = None
        if limit and len(objs) > limit:
            last = objs[limit - 1]["metadata"]
            token = encode_continue((last.get("namespace", ""), last["name"]), self.rv)
            remaining = len(objs) - limit
            objs = objs[:limit]
        return objs, str(self.rv), token, remaining

    def watch(
        self,
        t: Table,
        namespace: str | None,
        labels: list[Requirement],
        fields: Callable[[Obj], bool] | None,
        resource_version: str | None,
        send_initial_events: bool = False,
        node_key: str | None = None,
        lines: bool = False,
    ) -> Watcher:
        w = Watcher(namespace, labels, fields, node_key=node_key, lines=lines)
        if resource_version in (None, "", "0") or send_initial_events:
            # "Get state and start at most recent": synthetic ADDED for what exists now.
            for o in self.candidates(t, namespace, node_key or None):
                if w.matches(o):
                    w.queue.put_nowait(("ADDED", o, None))
            if send_initial_events:
                # WatchList (KEP-3157): a bookmark annotated k8s.io/initial-events-end closes the initial state.
                end = {
                    "metadata": {
                        "resourceVersion": str(self.rv),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    }
                }
                w.queue.put_nowait(("BOOKMARK", end, None))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise APIError(400, "BadRequest", f"invalid resource version: {resource_version}") from None
            if since < t.compacted_rv:
                # apiserver cacher: "too old resource version: %d (%d)"
                raise gone(f"too old resource version: {since} ({t.compacted_rv + 1})")
            for ev in t.history:
                if ev.rv > since:
                    w.offer(ev)
        t.add_watcher(w)
        return w

    def unwatch(self, t: Table, w: Watcher) -> None:
        t.remove_watcher(w)


def _node_of(obj: Obj) -> str:
    return (obj.get("spec") or {}).get("nodeName") or ""


def encode_continue(last: tuple[str, str], rv: int) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(last)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        start = json.loads(raw)["start"]
        return (start[0], start[1])
    except Exception:
        raise APIError(400, "BadRequest", "continue key is not valid: invalid continue token") from None
