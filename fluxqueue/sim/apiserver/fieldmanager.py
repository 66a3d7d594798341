"""managedFields and server-side apply, minimal but honest.

Follows k8s.io/apimachinery/pkg/util/managedfields and structured-merge-diff: each manager owns a set of
field paths (``f:`` map keys, ``k:{...}`` list items keyed by their merge key, ``v:`` set members; other lists
are atomic). An Update takes ownership of the fields it changed from whoever held them; an Apply owns exactly
the fields in its configuration, conflicts (409) when another manager owns a field it sets to a different
value unless forced, and removes fields it stopped applying that nobody else owns.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from .errors import APIError
from .patch import MERGE_PRIMITIVE, merge_key
from .store import clone

Path = tuple[str, ...]
_META_FIELDS = ("labels", "annotations", "finalizers", "ownerReferences")


_CLOCK: list[Any] = [-1, ""]  # [second, its RFC 3339 form]: formatted once per second, not per write


def _now() -> str:
    sec = int(time.time())  # what time.gmtime() rounds to
    if sec != _CLOCK[0]:
        _CLOCK[1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))
        _CLOCK[0] = sec
    return _CLOCK[1]


def flatten(obj: dict[str, Any], kind: str) -> dict[Path, Any]:
    """Owned-field paths of an object -> their values (list item markers map to None)."""
    out: dict[Path, Any] = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        if k == "metadata":
            md = v or {}
            for mk in _META_FIELDS:
                if mk in md:
                    _walk(out, ("f:metadata", "f:" + mk), md[mk], ("metadata",), mk, kind)
            continue
        _walk(out, ("f:" + k,), v, (), k, kind)
    return out


def flatten_status(obj: dict[str, Any], kind: str) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    if "status" in obj:
        _walk(out, ("f:status",), obj["status"], (), "status", kind)
    return out


_FIELDS: dict[str, str] = {}
_HOLDERS = (dict, list)


def _f(k: str) -> str:
    """ "f:" + k, interned and remembered (field names are few; paths share their strings)."""
    hit = _FIELDS.get(k)
    if hit is None:
        if len(_FIELDS) > 65536:
            _FIELDS.clear()
        hit = _FIELDS[k] = sys.intern("f:" + k)
    return hit


def _walk(out: dict[Path, Any], p: Path, v: Any, parent: tuple[str, ...], name: str, kind: str) -> None:
    if isinstance(v, dict) and v:
        sub = (*parent, name)
        for k, child in v.items():
            if child and isinstance(child, _HOLDERS):
                _walk(out, (*p, _f(k)), child, sub, k, kind)
            else:
                out[(*p, _f(k))] = child  # what _walk does with a leaf
    elif isinstance(v, list) and v:
        key = merge_key(parent, name, kind)
        if name in MERGE_PRIMITIVE and all(not isinstance(x, dict | list) for x in v):
            for x in v:
                out[(*p, _set_member(x))] = None
        elif key and all(isinstance(x, dict) and key in x for x in v):
            sub = (*parent, name)
            for item in v:
                ip = (*p, _list_key(key, item[key]))
                out[ip] = None
                for k, child in item.items():
                    _walk(out, (*ip, _f(k)), child, sub, k, kind)
        else:
            out[p] = v
    else:
        out[p] = v


_MISSING: Any = object()


try:
    import orjson

    _STRICT = (
        orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
    )

    def _json(v: Any) -> bytes:
        return orjson.dumps(v, option=_STRICT)

except ImportError:  # pragma: no cover

    def _json(v: Any) -> bytes:
        return json.dumps(v).encode()


def _same(a: Any, b: Any) -> bool:
    """Equal values that flatten to the same paths. ``==`` alone is not enough: paths carry the JSON of
    list keys and set members, where 1, 1.0 and True differ; the (C) serializations tell them apart."""
    if a is b:
        return True
    if a != b:
        return False
    try:
        return _json(a) == _json(b)
    except (
        TypeError,
        ValueError,
    ):  # not plain JSON (orjson.JSONEncodeError is a TypeError): compare the walks
        return False


def _diff(
    changed: set[Path],
    removed: set[Path],
    p: Path,
    old: Any,
    new: Any,
    parent: tuple[str, ...],
    name: str,
    kind: str,
) -> None:
    """The paths under ``p`` that flattening ``old`` and ``new`` (``_MISSING``: absent) and comparing would
    find changed (in new, absent from old or with another value) and removed (in old only), without walking
    the equal parts: equal values flatten to equal paths and values."""
    if old is not _MISSING and new is not _MISSING and _same(old, new):
        return
    if isinstance(old, dict) and old and isinstance(new, dict) and new:
        # non-empty objects flatten to their fields' paths: compare field by field
        _diff_fields(changed, removed, p, old, new, (*parent, name), kind)
        return
    if isinstance(old, list) and old and isinstance(new, list) and new and name not in MERGE_PRIMITIVE:
        key = merge_key(parent, name, kind)
        if key and _diff_items(changed, removed, p, old, new, (*parent, name), key, kind):
            return
    o: dict[Path, Any] = {}
    if old is not _MISSING:
        _walk(o, p, old, parent, name, kind)
    n: dict[Path, Any] = {}
    if new is not _MISSING:
        _walk(n, p, new, parent, name, kind)
    for q, v in n.items():
        if q not in o or o[q] != v:
            changed.add(q)
    for q in o:
        if q not in n:
            removed.add(q)


def _diff_fields(
    changed: set[Path],
    removed: set[Path],
    p: Path,
    old: dict[str, Any],
    new: dict[str, Any],
    sub: tuple[str, ...],
    kind: str,
) -> None:
    """_diff of two objects at ``p``, field by field."""
    for k, child in new.items():
        _diff(changed, removed, (*p, _f(k)), old.get(k, _MISSING), child, sub, k, kind)
    for k, child in old.items():
        if k not in new:
            gone: dict[Path, Any] = {}
            _walk(gone, (*p, _f(k)), child, sub, k, kind)
            removed.update(gone)


def _diff_items(
    changed: set[Path],
    removed: set[Path],
    p: Path,
    old: list[Any],
    new: list[Any],
    sub: tuple[str, ...],
    key: str,
    kind: str,
) -> bool:
    """_diff of two lists of items keyed by ``key`` item by item (a status's conditions: the unchanged ones
    are not walked). False, having done nothing, unless both flatten as such lists with no two items of one
    list on the same path (the walk of both is the answer then)."""
    items: list[dict[Path, Any]] = []
    for lst in (old, new):
        by: dict[Path, Any] = {}
        for x in lst:
            if not isinstance(x, dict) or key not in x:
                return False
            by[(*p, _list_key(key, x[key]))] = x
        if len(by) != len(lst):
            return False
        items.append(by)
    olds, news = items
    for ip, item in news.items():
        prev = olds.get(ip)
        if prev is None:
            gained: dict[Path, Any] = {ip: None}
            for k, child in item.items():
                _walk(gained, (*ip, _f(k)), child, sub, k, kind)
            changed.update(gained)
        elif prev is not item:
            _diff_fields(changed, removed, ip, prev, item, sub, kind)
    for ip, item in olds.items():
        if ip not in news:
            lost: dict[Path, Any] = {ip: None}
            for k, child in item.items():
                _walk(lost, (*ip, _f(k)), child, sub, k, kind)
            removed.update(lost)
    return True


def diff(old: dict[str, Any], new: dict[str, Any], kind: str, status: bool) -> tuple[set[Path], set[Path]]:
    """(changed, removed) as ``flatten`` (``flatten_status`` when ``status``) of both and comparing would find."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    if status:
        _diff(
            changed,
            removed,
            ("f:status",),
            old.get("status", _MISSING),
            new.get("status", _MISSING),
            (),
            "status",
            kind,
        )
        return changed, removed
    for k, v in new.items():
        if k in ("apiVersion", "kind", "status", "metadata"):
            continue
        _diff(changed, removed, ("f:" + k,), old.get(k, _MISSING), v, (), k, kind)
    for k, v in old.items():
        if k not in new and k not in ("apiVersion", "kind", "status", "metadata"):
            gone: dict[Path, Any] = {}
            _walk(gone, ("f:" + k,), v, (), k, kind)
            removed.update(gone)
    omd = (old["metadata"] or {}) if "metadata" in old else {}
    nmd = (new["metadata"] or {}) if "metadata" in new else {}
    for mk in _META_FIELDS:
        o, n = omd.get(mk, _MISSING), nmd.get(mk, _MISSING)
        if o is not _MISSING or n is not _MISSING:
            _diff(changed, removed, ("f:metadata", "f:" + mk), o, n, ("metadata",), mk, kind)
    return changed, removed


_ITEM_KEYS: dict[tuple[str, Any], str] = {}


def _list_key(key: str, value: Any) -> str:
    """ "k:" + the JSON of {key: value}; remembered for strings and ints (names, types, IPs, ports)."""
    t = type(value)
    if t is not str and t is not int:
        return "k:" + json.dumps({key: value}, separators=(",", ":"))
    hit = _ITEM_KEYS.get((key, value))
    if hit is None:
        if len(_ITEM_KEYS) > 65536:
            _ITEM_KEYS.clear()
        hit = _ITEM_KEYS[(key, value)] = sys.intern("k:" + json.dumps({key: value}, separators=(",", ":")))
    return hit


_MEMBERS: dict[str, str] = {}


def _set_member(value: Any) -> str:
    """ "v:" + the JSON of a set member; remembered for strings (finalizers)."""
    if type(value) is not str:
        return "v:" + json.dumps(value, separators=(",", ":"))
    hit = _MEMBERS.get(value)
    if hit is None:
        if len(_MEMBERS) > 65536:
            _MEMBERS.clear()
        hit = _MEMBERS[value] = sys.intern("v:" + json.dumps(value, separators=(",", ":")))
    return hit


_SHARED: dict[frozenset[Path], dict[str, Any]] = {}
# id of a document to_fields_v1 built -> (the document, its paths): reading managedFields back costs nothing
_PATHS: dict[int, tuple[dict[str, Any], frozenset[Path]]] = {}
# The generation before (_SHARED, _PATHS): when the current one is full it becomes the old one, whose hits
# move to the current one. Clearing everything instead made every object written before (with 50,000 pods,
# each with its own status document, all of them) miss at its next write: a full re-read of its documents.
_OLD: list[dict[Any, Any]] = [{}, {}]
_GENERATION = 8192


def to_fields_v1(paths: set[Path] | frozenset[Path]) -> dict[str, Any]:
    """The fieldsV1 document. Pods of one template own the same fields: their (never mutated) documents are
    shared, which keeps 50,000 pods' managedFields from dominating memory."""
    key = paths if type(paths) is frozenset else frozenset(paths)
    doc = _SHARED.get(key)
    if doc is not None:
        return doc
    doc = _OLD[0].get(key)
    if doc is not None:
        hit = _OLD[1].get(id(doc))
        if hit is not None and hit[0] is doc:
            _keep(key, doc, hit[1])  # in use again: into the current generation
            return doc
    doc, exact = _build_fields_v1(key)
    # what reading the document back gives, once instead of at every later write of the object: the
    # paths themselves, unless the document cannot say so (see _build_fields_v1)
    _keep(key, doc, key if exact else frozenset(from_fields_v1(doc)))
    return doc


def _keep(key: frozenset[Path] | None, doc: dict[str, Any], paths: frozenset[Path]) -> None:
    """Remember ``doc`` as to_fields_v1's answer for ``key`` (None: for no key, it was moved) and what
    reading it back gives."""
    global _SHARED, _PATHS
    if len(_PATHS) >= _GENERATION:
        _OLD[0], _OLD[1] = _SHARED, _PATHS
        _SHARED, _PATHS = {}, {}
    if key is not None:
        _SHARED[key] = doc
    _PATHS[id(doc)] = (doc, paths)


def paths_of(doc: dict[str, Any]) -> frozenset[Path]:
    """``from_fields_v1`` of a document, free for the (shared, never mutated) ones to_fields_v1 built."""
    hit = _PATHS.get(id(doc))
    if hit is not None and hit[0] is doc:
        return hit[1]
    hit = _OLD[1].get(id(doc))
    if hit is not None and hit[0] is doc:
        paths = hit[1]
        # still in use: into the current generation, as to_fields_v1's answer for its paths if it was
        _keep(paths if _OLD[0].get(paths) is doc else None, doc, paths)
        return paths
    return frozenset(from_fields_v1(doc))


def _build_fields_v1(paths: set[Path] | frozenset[Path]) -> tuple[dict[str, Any], bool]:
    """(the document, whether from_fields_v1 reads exactly ``paths`` back). It does unless a path also has
    longer ones below it (an ``f:``/``v:`` one is then lost, it is no leaf) or a list item has fields
    without its own path (the item's "." adds it).

    Sorted, a path shares its first parts with the one before it: only the rest is walked (the nodes of the
    previous path are kept), and a node first reached now is new (its paths are contiguous in sorted order).
    """
    root: dict[str, Any] = {}
    exact = True
    prev: Path = ()
    nodes = [root]  # nodes[i]: the node of prev[:i]
    for p in sorted(paths):
        n = 0
        lim = min(len(p), len(prev))
        while n < lim and p[n] == prev[n]:
            n += 1
        if n and n == len(prev) and not prev[-1].startswith("k:"):
            exact = False  # p extends prev, an f:/v: path that is then no leaf
        del nodes[n + 1 :]
        node = nodes[n]
        for i in range(n, len(p)):
            if i:
                if p[i - 1].startswith("k:"):
                    node.setdefault(".", {})  # a list item with fields: its own "." (before them)
                    if i > n:
                        exact = False  # an item reached first now has no path of its own
            child = node[p[i]] = {}
            nodes.append(child)
            node = child
        prev = p
    return root, exact


def from_fields_v1(doc: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, child in (doc or {}).items():
        if k == ".":
            out.add(prefix)
            continue
        p = (*prefix, k)
        if not child:
            out.add(p)
        else:
            out |= from_fields_v1(child, p)
    return out


def render(p: Path) -> str:
    s = ""
    for part in p:
        if part.startswith("f:"):
            s += "." + part[2:]
        elif part.startswith("k:"):
            kv = json.loads(part[2:])
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in kv.items()) + "]"
        elif part.startswith("v:"):
            s += "[" + part[2:] + "]"
    return s


_ENTRY_KEYS = ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1")
_ENTRY_KEYS_SUB = (*_ENTRY_KEYS, "subresource")


class Entries:
    """The managedFields list as {(manager, operation, subresource): (apiVersion, time, paths)}."""

    def __init__(self, managed: list[dict[str, Any]] | None):
        self.entries: dict[tuple[str, str, str], list[Any]] = {}
        # key -> the entry as read, while to_list would build an equal one (same keys, order and values):
        # an entry no write changed is handed on instead of rebuilt (entries of stored objects are never
        # mutated, like the rest of them)
        self.kept: dict[tuple[str, str, str], dict[str, Any]] = {}
        for e in managed or []:
            k = (e.get("manager", ""), e.get("operation", "Update"), e.get("subresource", ""))
            doc = e.get("fieldsV1") or {}
            paths = paths_of(doc)
            self.entries[k] = [e.get("apiVersion", ""), e.get("time", ""), paths]
            keys = tuple(e)
            if (
                paths
                and (keys == _ENTRY_KEYS or (keys == _ENTRY_KEYS_SUB and k[2]))
                and e["fieldsType"] == "FieldsV1"
                and to_fields_v1(paths) is doc  # this very document is to_list's for these paths
            ):
                self.kept[k] = e
            else:
                self.kept.pop(k, None)

    def to_list(self) -> list[dict[str, Any]]:
        out = []
        kept = self.kept
        for key, (api_version, t, paths) in self.entries.items():
            e = kept.get(key)
            if e is not None:
                out.append(e)
                continue
            if not paths:
                continue
            manager, op, sub = key
            e = {
                "manager": manager,
                "operation": op,
                "apiVersion": api_version,
                "time": t,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(paths),
            }
            if sub:
                e["subresource"] = sub
            out.append(e)
        return out

    def take(
        self, key: tuple[str, str, str], api_version: str, paths: set[Path], owned: set[Path] | None = None
    ) -> None:
        """Give ``paths`` to ``key`` (removing them from the others); ``owned`` replaces its whole set."""
        kept = self.kept
        for k, entry in self.entries.items():
            if k != key and not entry[2].isdisjoint(paths):
                entry[2] = entry[2] - paths
                kept.pop(k, None)
        cur = self.entries.get(key)
        if owned is None and cur is not None and paths <= cur[2]:
            # an update of fields the manager owns already (a kubelet's next status): same set, same time
            if cur[0] != api_version:
                cur[0] = api_version
                kept.pop(key, None)
            return
        new = set(owned) if owned is not None else (set(cur[2]) if cur else set()) | paths
        if cur is None or cur[2] != new:
            self.entries[key] = [api_version, _now(), new]
            kept.pop(key, None)
        elif cur[0] != api_version:
            cur[0] = api_version
            kept.pop(key, None)

    def forget(self, paths: set[Path]) -> None:
        for k, entry in self.entries.items():
            if not entry[2].isdisjoint(paths):
                entry[2] = entry[2] - paths
                self.kept.pop(k, None)


def _under(p: Path, prefixes: set[Path]) -> bool:
    return any(p[: len(q)] == q for q in prefixes)


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    api_version: str,
    kind: str,
    subresource: str = "",
) -> None:
    """Set new.metadata.managedFields after a create/update/patch by ``manager``."""
    if old is None:
        flat = flatten_status if subresource == "status" else flatten
        changed, removed = set(flat(new, kind)), set()
    else:
        changed, removed = diff(old, new, kind, subresource == "status")
    entries = Entries((old or new)["metadata"].get("managedFields") if old is not None else None)
    if removed:
        entries.forget(removed)
    if changed:
        entries.take((manager, "Update", subresource), api_version, changed)
    new["metadata"]["managedFields"] = entries.to_list()


def _merge(live: Any, applied: Any, parent: tuple[str, ...], name: str, kind: str) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict):
        out = dict(live)
        for k, v in applied.items():
            out[k] = _merge(live.get(k), v, (*parent, name) if name else parent, k, kind)
        return out
    if isinstance(applied, list) and isinstance(live, list):
        key = merge_key(parent, name, kind)
        if name in MERGE_PRIMITIVE:
            return live + [x for x in applied if x not in live]
        if key and all(isinstance(x, dict) and key in x for x in applied + live):
            out = list(live)
            for item in applied:
                idx = next((i for i, x in enumerate(out) if x.get(key) == item[key]), None)
                if idx is None:
                    out.append(clone(item))
                else:
                    out[idx] = _merge(out[idx], item, parent, name, kind)
            return out
    return clone(applied)


def _delete_path(obj: dict[str, Any], p: Path, kind: str) -> None:
    cur: Any = obj
    for i, part in enumerate(p):
        last = i == len(p) - 1
        if part.startswith("f:"):
            k = part[2:]
            if not isinstance(cur, dict) or k not in cur:
                return
            if last:
                del cur[k]
                return
            cur = cur[k]
        elif part.startswith("k:") or part.startswith("v:"):
            if not isinstance(cur, list):
                return
            if part.startswith("v:"):
                val = json.loads(part[2:])
                match = [j for j, x in enumerate(cur) if x == val]
            else:
                kv = json.loads(part[2:])
                match = [
                    j
                    for j, x in enumerate(cur)
                    if isinstance(x, dict) and all(x.get(a) == b for a, b in kv.items())
                ]
            if not match:
                return
            if last:
                cur.pop(match[0])
                return
            cur = cur[match[0]]


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    api_version: str,
    kind: str,
    force: bool,
    subresource: str = "",
) -> dict[str, Any]:
    """Server-side apply of ``applied`` by ``manager`` onto ``live`` (None: create). Raises 409 on conflicts."""
    flat = flatten_status if subresource == "status" else flatten
    applied_flat = flat(applied, kind)
    key = (manager, "Apply", subresource)
    if live is None:
        obj = clone(applied)
        entries = Entries(None)
        entries.take(key, api_version, set(applied_flat), owned=set(applied_flat))
        obj.setdefault("metadata", {})["managedFields"] = entries.to_list()
        return obj
    live_flat = flat(live, kind)
    entries = Entries(live["metadata"].get("managedFields"))
    conflicts: list[tuple[str, Path, str]] = []
    for k, (av, _t, paths) in entries.entries.items():
        if k == key:
            continue
        for p in paths & set(applied_flat):
            if p in live_flat and live_flat[p] != applied_flat[p]:
                conflicts.append((k[0], p, av))
    if conflicts and not force:
        causes = [
            {
                "reason": "FieldManagerConflict",
                "message": f'conflict with "{m}" using {av}',
                "field": render(p),
            }
            for m, p, av in sorted(conflicts)
        ]
        lines = "\n".join(f"- {c['message']}: {c['field']}" for c in causes)
        n = len(causes)
        if n == 1:
            msg = f"Apply failed with 1 conflict: {causes[0]['message']}: {causes[0]['field']}"
        else:
            msg = f"Apply failed with {n} conflicts: {lines}"
        raise APIError(409, "Conflict", msg, {"causes": causes})
    previously = set(entries.entries.get(key, [None, None, set()])[2])
    # _merge shares what the configuration does not name with ``live`` (the stored object, never to be
    # mutated): the dropped fields below are deleted from a copy of our own
    merged = clone(_merge(live, {k: v for k, v in applied.items() if k != "metadata"}, (), "", kind))
    amd = applied.get("metadata") or {}
    md = dict(merged["metadata"])
    for mk in _META_FIELDS:
        if mk in amd:
            md[mk] = _merge(md.get(mk), amd[mk], ("metadata",), mk, kind)
    merged["metadata"] = md
    forced = {p for _m, p, _av in conflicts}
    if forced:
        entries.forget(forced)
    entries.take(key, api_version, set(), owned=set(applied_flat))
    others: set[Path] = set()
    for k, (_av, _t, paths) in entries.entries.items():
        if k != key:
            others |= paths
    dropped = previously - set(applied_flat)
    for p in sorted(dropped, key=len, reverse=True):
        if p not in others and not _under(p, others) and not any(o[: len(p)] == p for o in others):
            _delete_path(merged, p, kind)
    merged["metadata"]["managedFields"] = entries.to_list()
    return merged
