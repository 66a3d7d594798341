"""OpenAPI documents for kubectl (v3 per group-version, v2 as one document) and strict field validation.

Built-in schemas come from the JSON schemas the kubernetes-validate package ships (generated from the real
Kubernetes OpenAPI; they keep x-kubernetes-patch-merge-key and friends), converted back to OpenAPI form with
``x-kubernetes-group-version-kind`` on each kind. Every PATCH operation declares the ``fieldValidation``
query parameter: that is how kubectl (QueryParamVerifierV3) decides to let the server validate fields
(``fieldValidation=Strict``), which :meth:`SchemaIndex.unknown_fields` then does like the real decoder
("strict decoding error: unknown field ...").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any

from .resources import Registry, ResourceType

SCHEMA_VERSION = "v1.35.0"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@functools.lru_cache(maxsize=1)
def _raw_definitions() -> dict[str, Any]:
    import kubernetes_validate

    base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    candidates = sorted(d for d in os.listdir(base) if d.endswith("-local") and not d.endswith("strict"))
    want = f"{SCHEMA_VERSION}-local"
    chosen = want if want in candidates else candidates[-1]
    with open(os.path.join(base, chosen, "_definitions.json")) as f:
        return json.load(f)["$defs"]


def _convert(node: Any, ref_prefix: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out[k] = ref_prefix + v.rsplit("/", 1)[-1]
            elif k == "type" and isinstance(v, list):
                types = [t for t in v if t != "null"]
                if len(types) == 1:
                    out[k] = types[0]
            else:
                out[k] = _convert(v, ref_prefix)
        return out
    if isinstance(node, list):
        return [_convert(x, ref_prefix) for x in node]
    return node


@functools.lru_cache(maxsize=1)
def shared_index() -> SchemaIndex:
    """One converted copy of the built-in schemas per process (every APIServer reads the same)."""
    return SchemaIndex()


class SchemaIndex:
    def __init__(self) -> None:
        self._defs: dict[str, dict[str, Any]] | None = None
        self._gvk: dict[tuple[str, str, str], str] = {}
        self._cache: dict[tuple[str, str, str], tuple[str, bytes]] = {}

    def defs(self) -> dict[str, dict[str, Any]]:
        if self._defs is None:
            raw = _raw_definitions()
            defs = {name: _convert(schema, "#/components/schemas/") for name, schema in raw.items()}
            defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
                "type": "string",
                "format": "int-or-string",
            }
            defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": "string"}
            for name, schema in defs.items():
                props = schema.get("properties") or {}
                av = (props.get("apiVersion") or {}).get("enum")
                kind = (props.get("kind") or {}).get("enum")
                if av and kind and len(av) == 1 and len(kind) == 1:
                    group, _, version = av[0].rpartition("/")
                    schema["x-kubernetes-group-version-kind"] = [
                        {"group": group, "version": version, "kind": kind[0]}
                    ]
                    self._gvk[(group, version, kind[0])] = name
                    for f in ("apiVersion", "kind"):
                        props[f] = {k: v for k, v in props[f].items() if k != "enum"}
            self._defs = defs
        return self._defs

    def def_name(self, group: str, version: str, kind: str) -> str | None:
        self.defs()
        return self._gvk.get((group, version, kind))

    def _closure(self, roots: list[str]) -> dict[str, Any]:
        defs = self.defs()
        seen: dict[str, Any] = {}
        stack = list(roots)
        while stack:
            n = stack.pop()
            if n in seen or n not in defs:
                continue
            seen[n] = defs[n]
            stack.extend(_refs(defs[n]))
        return seen

    # ----- documents
    def v3_root(self, registry: Registry) -> dict[str, Any]:
        paths = {}
        for group, versions in registry.groups().items():
            for v in versions:
                p = f"api/{v}" if not group else f"apis/{group}/{v}"
                h, _ = self.v3_doc(registry, group, v)
                paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
        return {"paths": paths}

    def v3_doc(self, registry: Registry, group: str, version: str) -> tuple[str, bytes]:
        types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
        sig = "|".join(
            sorted(
                f"{rt.plural}:{json.dumps(rt.schema, sort_keys=True) if rt.custom else ''}" for rt in types
            )
        )
        key = (group, version, hashlib.sha256(sig.encode()).hexdigest())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        schemas: dict[str, Any] = {}
        roots = []
        paths: dict[str, Any] = {}
        for rt in types:
            ref = self._schema_name(rt, schemas, roots)
            paths.update(_paths(rt, ref))
        schemas.update(self._closure(roots))
        doc = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SCHEMA_VERSION},
            "paths": paths,
            "components": {"schemas": schemas},
        }
        body = json.dumps(doc).encode()
        h = hashlib.sha512(body).hexdigest()[:64].upper()
        self._cache[key] = (h, body)
        return h, body

    def _schema_name(self, rt: ResourceType, schemas: dict[str, Any], roots: list[str]) -> str:
        if rt.custom:
            name = f"{_reverse_domain(rt.group)}.{rt.version}.{rt.kind}"
            schema = json.loads(
                json.dumps(rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
            )
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            props["metadata"] = {"$ref": f"#/components/schemas/{OBJECT_META}"}
            schema["type"] = "object"
            schema["x-kubernetes-group-version-kind"] = [
                {"group": rt.group, "version": rt.version, "kind": rt.kind}
            ]
            schemas[name] = schema
            roots.append(OBJECT_META)
            return name
        name = self.def_name(rt.group, rt.version, rt.kind)
        if name is None:
            name = f"{_reverse_domain(rt.group or 'core')}.{rt.version}.{rt.kind}"
            schemas[name] = {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-group-version-kind": [
                    {"group": rt.group, "version": rt.version, "kind": rt.kind}
                ],
            }
            return name
        roots.append(name)
        return name

    def v2_doc(self, registry: Registry) -> bytes:
        defs = {n: _reref(s, "#/definitions/") for n, s in self.defs().items()}
        return json.dumps(
            {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": SCHEMA_VERSION},
                "paths": {},
                "definitions": defs,
            }
        ).encode()

    def type_error(self, rt: ResourceType, obj: dict[str, Any]) -> tuple[str, str, str] | None:
        """A value of the wrong JSON type in a built-in object (the real server fails to decode it)."""
        if rt.custom:
            return None
        name = self.def_name(rt.group, rt.version, rt.kind)
        if name is None:
            return None
        defs = self.defs()
        err = _checker(defs[name], defs)(obj)
        if err is None:
            return None
        segments, got, want = err
        path = ""
        for seg in reversed(segments):  # built as _type_error builds it
            path = f"{path}[{seg[0]}]" if type(seg) is tuple else (f"{path}.{seg}" if path else seg)
        return path, got, want

    # ----- strict field validation
    def unknown_fields(self, rt: ResourceType, obj: dict[str, Any]) -> list[str]:
        if rt.custom:
            if rt.schema is None:
                return []
            out: list[str] = []
            _unknown_custom(obj, rt.schema, "", out, root=True)
            return out
        name = self.def_name(rt.group, rt.version, rt.kind)
        if name is None:
            return []
        found = _unknown_check(self.defs()[name], self.defs())(obj)
        return [p[1:] for p in found] if found else []


_GO_TYPES = {
    "integer": "int64",
    "number": "float64",
    "string": "string",
    "boolean": "bool",
    "object": "map",
    "array": "slice",
}


def canonical_quantity(v: float) -> str:
    if float(v).is_integer():
        return str(int(v))
    return f"{round(v * 1000)}m"


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _type_error(
    value: Any, schema: dict[str, Any], path: str, defs: dict[str, Any]
) -> tuple[str, str, str] | None:
    """The first JSON type mismatch as (path, got, wanted), like encoding/json's UnmarshalTypeError."""
    if value is None:
        return None
    if str(schema.get("$ref", "")).endswith(".Quantity"):
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        return None if ok else (path, _json_type(value), "resource.Quantity")
    schema = _resolve(schema, defs)
    fmt = schema.get("format")
    t = schema.get("type")
    if fmt == "int-or-string":
        ok = isinstance(value, str | int) and not isinstance(value, bool)
        return None if ok else (path, _json_type(value), "intstr.IntOrString")
    if t is None:
        return None
    if t == "string":
        return None if isinstance(value, str) else (path, _json_type(value), "string")
    if t == "integer":
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else (path, _json_type(value), schema.get("format", "int64"))
        )
    if t == "number":
        return (
            None
            if isinstance(value, int | float) and not isinstance(value, bool)
            else (path, _json_type(value), "float64")
        )
    if t == "boolean":
        return None if isinstance(value, bool) else (path, _json_type(value), "bool")
    if t == "array":
        if not isinstance(value, list):
            return (path, _json_type(value), "slice")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                err = _type_error(v, items, f"{path}[{i}]", defs)
                if err:
                    return err
        return None
    if t == "object":
        if not isinstance(value, dict):
            return (path, _json_type(value), "struct")
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
            if sub is not None:
                err = _type_error(v, sub, f"{path}.{k}" if path else k, defs)
                if err:
                    return err
                if isinstance(v, int | float) and str(sub.get("$ref", "")).endswith(".Quantity"):
                    value[k] = canonical_quantity(v)  # a Quantity always reads back as its string form
    return None


# _type_error compiled: one checker per schema node, built on first use. A checker returns None or
# (path segments innermost first: keys, and (index,) for list items, got, wanted) and canonicalizes numeric Quantities in
# place like _type_error.
_Checker = Any
_CHECKERS: dict[int, tuple[dict[str, Any], _Checker]] = {}


def _checker(schema: dict[str, Any], defs: dict[str, Any]) -> _Checker:
    hit = _CHECKERS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    fn = _build_checker(schema, defs)
    _CHECKERS[id(schema)] = (schema, fn)  # the schemas live as long as the process's SchemaIndex
    return fn


def _is_quantity(schema: Any) -> bool:
    return isinstance(schema, dict) and str(schema.get("$ref", "")).endswith(".Quantity")


def _build_checker(schema: dict[str, Any], defs: dict[str, Any]) -> _Checker:
    if _is_quantity(schema):

        def quantity(value: Any) -> Any:
            if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
                return None
            return [], _json_type(value), "resource.Quantity"

        return quantity
    schema = _resolve(schema, defs)
    t = schema.get("type")
    if schema.get("format") == "int-or-string":

        def int_or_string(value: Any) -> Any:
            if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
                return None
            return [], _json_type(value), "intstr.IntOrString"

        return int_or_string
    if t is None:
        return _no_check
    if t == "string":

        def string(value: Any) -> Any:
            return None if value is None or isinstance(value, str) else ([], _json_type(value), "string")

        return string
    if t == "integer":
        want = schema.get("format", "int64")

        def integer(value: Any) -> Any:
            if value is None or (isinstance(value, int) and not isinstance(value, bool)):
                return None
            return [], _json_type(value), want

        return integer
    if t == "number":

        def number(value: Any) -> Any:
            if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
                return None
            return [], _json_type(value), "float64"

        return number
    if t == "boolean":

        def boolean(value: Any) -> Any:
            return None if value is None or isinstance(value, bool) else ([], _json_type(value), "bool")

        return boolean
    if t == "array":
        items = schema.get("items")
        item_schema = items if isinstance(items, dict) else None
        item_check: list[_Checker] = []  # compiled on first use (schemas are recursive)

        def array(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, list):
                return [], _json_type(value), "slice"
            if item_schema is None:
                return None
            if not item_check:
                item_check.append(_checker(item_schema, defs))
            check = item_check[0]
            for i, v in enumerate(value):
                err = check(v)
                if err:
                    err[0].append((i,))
                    return err
            return None

        return array
    if t == "object":
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        addl = addl if isinstance(addl, dict) else None
        # key -> (checker, is a Quantity) for the declared properties, compiled on first use
        known: dict[str, tuple[_Checker, bool] | None] = {}
        other: list[tuple[_Checker, bool] | None] = []

        def obj(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, dict):
                return [], _json_type(value), "struct"
            for k, v in value.items():
                if k in props:
                    ent = known.get(k, _UNSET)
                    if ent is _UNSET:
                        sub = props.get(k)
                        ent = known[k] = None if sub is None else (_checker(sub, defs), _is_quantity(sub))
                elif addl is not None:
                    if not other:
                        other.append((_checker(addl, defs), _is_quantity(addl)))
                    ent = other[0]
                else:
                    continue
                if ent is None:
                    continue
                err = ent[0](v)
                if err:
                    err[0].append(k)
                    return err
                if ent[1] and isinstance(v, int | float):
                    value[k] = canonical_quantity(v)  # a Quantity always reads back as its string form
            return None

        return obj
    return _no_check


def _no_check(value: Any) -> None:
    return None


_UNSET: Any = object()


def _reverse_domain(group: str) -> str:
    return ".".join(reversed(group.split(".")))


def _refs(node: Any) -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append(v.rsplit("/", 1)[-1])
            else:
                out.extend(_refs(v))
    elif isinstance(node, list):
        for x in node:
            out.extend(_refs(x))
    return out


def _reref(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (prefix + v.rsplit("/", 1)[-1] if k == "$ref" and isinstance(v, str) else _reref(v, prefix))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_reref(x, prefix) for x in node]
    return node


_PARAMS = [
    {"name": n, "in": "query", "description": n, "schema": {"type": t}, "uniqueItems": True}
    for n, t in (
        ("dryRun", "string"),
        ("fieldManager", "string"),
        ("fieldValidation", "string"),
        ("force", "boolean"),
        ("pretty", "string"),
    )
]


def _paths(rt: ResourceType, ref: str) -> dict[str, Any]:
    base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    coll = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    item = coll + "/{name}"
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    def op(action: str, verb_params: bool = True) -> dict[str, Any]:
        o: dict[str, Any] = {
            "operationId": f"{action}{rt.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK", "content": content}},
        }
        if verb_params:
            o["parameters"] = _PARAMS
            o["requestBody"] = {"content": content, "required": True}
        return o

    paths = {
        coll: {"get": op("list", False), "post": op("post")},
        item: {
            "get": op("get", False),
            "put": op("put"),
            "patch": op("patch"),
            "delete": op("delete", False),
        },
    }
    for sub in ("status", "scale"):
        if sub in rt.subresources:
            paths[f"{item}/{sub}"] = {"get": op("get", False), "put": op("put"), "patch": op("patch")}
            if sub == "scale":
                for o in paths[f"{item}/{sub}"].values():
                    o["x-kubernetes-group-version-kind"] = {
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                    }
    return paths


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 10:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        seen += 1
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(schema["allOf"][0], defs)
    return schema


_HOLDERS = (dict, list)  # the values that hold fields
# id of a resolved schema -> (the schema, its unknown-field checker); the schemas live as long as the index
_UNKNOWN: dict[int, tuple[dict[str, Any], Any]] = {}


def _unknown_check(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The unknown-field check of one schema, compiled: a function of a value answering None or the paths of
    its unknown fields relative to it (".a.b", "[0].c"), in the order met. References are resolved once and
    paths built only for the unknown fields, which makes it several times cheaper than walking the schema
    along with the value."""
    schema = _resolve(schema, defs)
    hit = _UNKNOWN.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    props = schema.get("properties")
    addl = schema.get("additionalProperties")
    addl_schema = addl if isinstance(addl, dict) else None
    items = schema.get("items")
    strict = addl is None and props is not None and not schema.get("x-kubernetes-preserve-unknown-fields")
    kids: dict[str, Any] = {}  # checkers of the properties met so far (schemas may be recursive)
    more: list[Any] = []  # the checker of additionalProperties or items, once needed

    def sub(v: Any, c: Any, where: str, out: list[str] | None) -> list[str] | None:
        found = c(v)
        if found:
            out = out if out is not None else []
            out.extend(where + f for f in found)
        return out

    def check(value: Any) -> list[str] | None:
        out: list[str] | None = None
        if isinstance(value, dict):
            if props is None and addl is None:
                return None
            for k, v in value.items():
                if props is not None and k in props:
                    if isinstance(v, _HOLDERS):  # only objects and arrays hold fields
                        c = kids.get(k)
                        if c is None:
                            c = kids[k] = _unknown_check(props[k], defs)
                        out = sub(v, c, "." + k, out)
                elif addl_schema is not None:
                    if isinstance(v, _HOLDERS) and not k.startswith("$"):
                        if not more:
                            more.append(_unknown_check(addl_schema, defs))
                        out = sub(v, more[0], "." + k, out)
                elif strict and not k.startswith("$"):  # "$...": strategic merge patch directives
                    out = out if out is not None else []
                    out.append("." + k)
        elif isinstance(value, list) and isinstance(items, dict):
            for i, v in enumerate(value):
                if isinstance(v, _HOLDERS):
                    if not more:
                        more.append(_unknown_check(items, defs))
                    out = sub(v, more[0], f"[{i}]", out)
        return out

    _UNKNOWN[id(schema)] = (schema, check)
    return check


def _unknown_custom(
    value: Any, schema: dict[str, Any], path: str, out: list[str], root: bool = False
) -> None:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if (root and k in ("apiVersion", "kind", "metadata")) or k.startswith("$"):
                continue
            p = f"{path}.{k}"
            if k in props:
                _unknown_custom(v, props[k], p, out)
            elif isinstance(addl, dict):
                _unknown_custom(v, addl, p, out)
            elif addl is not True:
                out.append(p)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            _unknown_custom(v, schema["items"], f"{path}[{i}]", out)
