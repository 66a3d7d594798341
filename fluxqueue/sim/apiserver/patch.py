"""The three patch formats: JSON Patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch.

Strategic merge patch follows k8s.io/apimachinery/pkg/util/strategicpatch for the fields kubectl and the
controllers use: lists carrying a ``patchMergeKey`` in the Go API types (containers by name, env by name,
volumes by name, volumeMounts by mountPath, container ports by containerPort, service ports by port,
conditions by type, ownerReferences by uid, ...) merge item by item; ``finalizers`` merge as a set; other
lists are replaced. Directives: ``$patch: replace|delete|merge``, ``$deleteFromPrimitiveList/<f>``,
``$setElementOrder/<f>``, ``$retainKeys``.
"""

from __future__ import annotations

from typing import Any

from .errors import APIError
from .store import clone

# Field name -> merge key: every x-kubernetes-patch-merge-key of the built-in schemas (k8s.io/api types.go
# patchMergeKey tags). Only "ports" and "addresses" differ by type, handled in merge_key.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
    "addresses": "type",
    "ports": "containerPort",
    "webhooks": "name",
    "matchConditions": "name",
    "secrets": "name",
    "allocatedResourcesStatus": "name",
    "resourceClaimStatuses": "name",
    "drivers": "name",
    "reservedFor": "uid",
    "variables": "name",
}
# Primitive lists with patchStrategy "merge" (set semantics).
MERGE_PRIMITIVE = {"finalizers", "podCIDRs"}


def merge_key(path: tuple[str, ...], field: str, kind: str) -> str | None:
    if field == "ports":
        # ServiceSpec.Ports merge on port; ContainerPort lists on containerPort (core/v1 types.go).
        if kind == "Service" and path == ("spec",):
            return "port"
        return "containerPort"
    if field == "addresses" and kind != "Node":
        return None
    return MERGE_KEYS.get(field)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386. The result is the caller's own: it shares nothing with ``target`` or ``patch``."""
    if not isinstance(patch, dict):
        return clone(patch)  # replaces the whole document: nothing of the target to copy
    return json_merge_patch_shared(clone(target), patch)  # what it shares is a private copy


def json_merge_patch_shared(target: Any, patch: Any) -> Any:
    """RFC 7386 like json_merge_patch, but the result shares with ``target`` every value the patch leaves
    alone (its own are the objects on the patch's paths and the patch's values): for callers that mutate
    only those, and for stored objects, which nobody mutates."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            result[k] = json_merge_patch_shared(result.get(k), v)
        else:
            result[k] = clone(v)
    return result


def strategic_merge_patch(target: Any, patch: Any, kind: str = "") -> Any:
    return _smp_map(clone(target) if isinstance(target, dict) else {}, patch, (), kind)


def _smp_map(orig: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...], kind: str) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(orig.get(f), list):
                orig[f] = [x for x in orig[f] if x not in v]
            continue
        if v is None:
            orig.pop(k, None)
            continue
        cur = orig.get(k)
        if isinstance(v, dict):
            merged = _smp_map(cur if isinstance(cur, dict) else {}, v, (*path, k), kind)
            if merged is None:
                orig.pop(k, None)
            else:
                orig[k] = merged
        elif isinstance(v, list):
            orig[k] = _smp_list(cur if isinstance(cur, list) else [], v, path, k, kind)
        else:
            orig[k] = v
    for f, order in orders.items():
        if isinstance(orig.get(f), list):
            orig[f] = _reorder(orig[f], order, merge_key(path, f, kind))
    if isinstance(retain, list):
        for k in list(orig):
            if k not in retain:
                del orig[k]
    return orig


def _smp_list(orig: list[Any], patch: list[Any], path: tuple[str, ...], field: str, kind: str) -> list[Any]:
    if field in MERGE_PRIMITIVE:
        out = list(orig)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    key = merge_key(path, field, kind)
    if key is None or not all(isinstance(x, dict) for x in patch):
        # `$patch: replace` inside a list replaces it; otherwise non-merging lists are replaced whole.
        return [clone(x) for x in patch if not (isinstance(x, dict) and x.get("$patch") == "replace")]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [clone(x) for x in patch if x.get("$patch") != "replace"]
    out = [clone(x) for x in orig]
    for item in patch:
        if key not in item:
            raise APIError(400, "BadRequest", f"map: {item} does not contain declared merge key: {key}")
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_smp_map({}, item, (*path, field), kind))
        else:
            out[idx] = _smp_map(out[idx], item, (*path, field), kind)
    return out


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(x: Any) -> Any:
        return x.get(key) if key and isinstance(x, dict) else x

    wanted = [ident(o) for o in order]
    ranked = sorted(
        range(len(items)),
        key=lambda i: wanted.index(ident(items[i])) if ident(items[i]) in wanted else len(wanted) + i,
    )
    return [items[i] for i in ranked]


# RFC 6902 JSON Patch.
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise APIError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str, owned: dict[int, Any] | None = None) -> Any:
    """The container the path's last part is in. With ``owned`` (copy on write: id -> the containers this
    patch made, its own), every container on the way that is not one of them is first replaced by a
    shallow copy, so that what the patch changes is never shared with the document it started from."""
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            try:
                i = int(p)
                nxt = cur[i]
            except (ValueError, IndexError):
                raise _missing(path) from None
            if owned is not None and isinstance(nxt, dict | list) and id(nxt) not in owned:
                nxt = cur[i] = _own(nxt, owned)
            cur = nxt
        elif isinstance(cur, dict) and p in cur:
            nxt = cur[p]
            if owned is not None and isinstance(nxt, dict | list) and id(nxt) not in owned:
                nxt = cur[p] = _own(nxt, owned)
            cur = nxt
        else:
            raise _missing(path)
    return cur


def _own(container: Any, owned: dict[int, Any]) -> Any:
    mine = dict(container) if isinstance(container, dict) else list(container)
    owned[id(mine)] = mine  # held, so that its id is not reused while the patch runs
    return mine


def _missing(path: str) -> APIError:
    # apiserver: jsonpatch errors become 422 Invalid / "doc is missing path"
    return APIError(
        422,
        "Invalid",
        f'the server rejected our request due to an error in our request: doc is missing path: "{path}": missing value',
    )


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        try:
            return parent[int(last)]
        except (ValueError, IndexError):
            raise _missing(path) from None
    if not isinstance(parent, dict) or last not in parent:
        raise _missing(path)
    return parent[last]


def _add(doc: Any, path: str, value: Any, owned: dict[int, Any] | None = None) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path, owned)
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                i = int(last)
            except ValueError:
                raise _missing(path) from None
            if i < 0 or i > len(parent):
                raise _missing(path)
            parent.insert(i, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise _missing(path)
    return doc


def _remove(doc: Any, path: str, owned: dict[int, Any] | None = None) -> Any:
    parts = _pointer(path)
    parent = _parent(doc, parts, path, owned)
    last = parts[-1]
    if isinstance(parent, list):
        try:
            parent.pop(int(last))
        except (ValueError, IndexError):
            raise _missing(path) from None
    elif isinstance(parent, dict) and last in parent:
        del parent[last]
    else:
        raise _missing(path)
    return doc


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902. The result is the caller's own: it shares nothing with ``doc`` or ``ops``."""
    if not isinstance(ops, list):
        raise APIError(400, "BadRequest", "json patch must be a list of operations")
    return _json_patch(clone(doc), ops, None)


def json_patch_shared(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 like json_patch, but the result shares with ``doc`` every value no operation reaches into
    (the containers on the operations' paths are copied, added values are the result's own; a moved value
    is moved as it is): for callers that mutate only the former or own ``doc`` (an object being created,
    patched by admission webhooks), and for stored objects, which nobody mutates. ``doc`` is left as it is."""
    if not isinstance(ops, list):
        raise APIError(400, "BadRequest", "json patch must be a list of operations")
    owned: dict[int, Any] = {}
    if isinstance(doc, dict | list):
        doc = _own(doc, owned)
    return _json_patch(doc, ops, owned)


def _json_patch(doc: Any, ops: list[dict[str, Any]], owned: dict[int, Any] | None) -> Any:
    for op in ops:
        kind = op.get("op")
        path = op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, clone(op.get("value")), owned)
        elif kind == "remove":
            doc = _remove(doc, path, owned)
        elif kind == "replace":
            _get(doc, path)
            doc = _remove(doc, path, owned) if _pointer(path) else doc
            doc = _add(doc, path, clone(op.get("value")), owned)
        elif kind == "move":
            value = _get(doc, op["from"])
            doc = _remove(doc, op["from"], owned)
            doc = _add(doc, path, value, owned)
        elif kind == "copy":
            doc = _add(doc, path, clone(_get(doc, op["from"])), owned)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise APIError(
                    422, "Invalid", f"the server rejected our request: testing value {path} failed"
                )
        else:
            raise APIError(400, "BadRequest", f"Unexpected kind: {kind}")
    return doc
