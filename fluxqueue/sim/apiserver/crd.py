"""CustomResourceDefinitions: serving the resources they declare, validating and pruning with their schema.

Follows k8s.io/apiextensions-apiserver: a CRD named <plural>.<group> serves every ``served`` version (all
stored as one), with the status and scale subresources it declares; its status gets NamesAccepted and
Established conditions. Custom objects are validated against the structural openAPIV3Schema (type, required,
enum, bounds, pattern, items, additionalProperties, x-kubernetes-int-or-string, nullable) with the real
server's messages, get schema ``default``s, and lose unknown fields (pruning) unless
``x-kubernetes-preserve-unknown-fields`` is set. Deleting a CRD deletes its objects.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from .coretypes import sync_crd_api_services
from .resources import ResourceType
from .store import clone
from .strategy import Obj, Strategy

if TYPE_CHECKING:
    from .engine import Engine


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _schema_of(version: dict[str, Any]) -> dict[str, Any] | None:
    return ((version.get("schema") or {}).get("openAPIV3Schema")) or None


# ----- schema walking (pure)
def prune(value: Any, schema: dict[str, Any] | None, root: bool = False) -> Any:
    """Drop fields the schema does not declare (apiextensions pruning); apiVersion/kind/metadata stay."""
    if schema is None:
        return value
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return value
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            if root and k in ("apiVersion", "kind", "metadata"):
                out[k] = v
            elif props is not None and k in props:
                out[k] = prune(v, props[k])
            elif isinstance(addl, dict):
                out[k] = prune(v, addl)
            elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[k] = v
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"]) for v in value]
    return value


def apply_defaults(value: Any, schema: dict[str, Any] | None) -> Any:
    if schema is None or not isinstance(value, dict):
        if isinstance(value, list) and schema and isinstance(schema.get("items"), dict):
            return [apply_defaults(v, schema["items"]) for v in value]
        return value
    for k, sub in (schema.get("properties") or {}).items():
        if k not in value and "default" in sub:
            value[k] = clone(sub["default"])
        if k in value:
            value[k] = apply_defaults(value[k], sub)
    return value


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    return str(v)


def validate_schema(value: Any, schema: dict[str, Any], path: str) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if value is None:
        if schema.get("nullable"):
            return errs
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _TYPES["integer"](value)):
            errs.append(
                (path, f"Invalid value: {_show(value)}: {path} in body must be of type integer-or-string")
            )
        return errs
    if t and t in _TYPES and not _TYPES[t](value):
        got = (
            "null"
            if value is None
            else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
                type(value), "number" if isinstance(value, float) else "integer"
            )
        )
        errs.append((path, f'Invalid value: "{got}": {path} in body must be of type {t}: "{got}"'))
        return errs
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(e) for e in schema["enum"])
        errs.append((path, f"Unsupported value: {_show(value)}: supported values: {allowed}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(
                (
                    path,
                    f"Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(
                (
                    path,
                    f"Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append((path, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(
                (
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should be at least {schema['minLength']} chars long",
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(
                (path, f"Invalid value: {_show(value)}: {path} in body should match '{schema['pattern']}'")
            )
    if isinstance(value, dict):
        for req in schema.get("required") or []:
            if req not in value:
                errs.append((f"{path}.{req}", "Required value"))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                errs += validate_schema(v, props[k], f"{path}.{k}")
            elif isinstance(addl, dict):
                errs += validate_schema(v, addl, f"{path}.{k}")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errs.append((path, f"Too many: {len(value)}: must have at most {schema['maxProperties']} items"))
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                errs += validate_schema(v, items, f"{path}[{i}]")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append((path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(
                (
                    path,
                    f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items",
                )
            )
    return errs


class CustomResourceStrategy(Strategy):
    status_update_keeps_rest = False  # prepare_status_update defaults (and prunes) the whole object

    def __init__(self, rt: ResourceType):
        self.rt = rt

    def default(self, obj: Obj) -> None:
        schema = self.rt.schema
        if schema is None:
            return
        pruned = prune(obj, schema, root=True)
        if pruned is not obj:  # a root that preserves unknown fields is the object itself: nothing to drop
            obj.clear()
            obj.update(pruned)
        apply_defaults(obj, schema)

    def prepare_create(self, obj: Obj) -> None:
        if self.rt.has_status:
            obj.pop("status", None)  # status comes only through /status

    def prepare_update(self, new: Obj, old: Obj) -> None:
        if self.rt.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        self.default(new)


class CRDManager:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._strategies: dict[tuple[str, str, str], CustomResourceStrategy] = {}

    def strategy(self, rt: ResourceType) -> Strategy:
        s = self._strategies.get(rt.key)
        if s is None or s.rt is not rt:
            s = self._strategies[rt.key] = CustomResourceStrategy(rt)
        return s

    def default_crd(self, crd: Obj) -> None:
        spec = crd.setdefault("spec", {})
        names = spec.setdefault("names", {})
        if names.get("kind"):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        spec.setdefault("conversion", {"strategy": "None"})
        for v in spec.get("versions") or []:
            v.setdefault("served", True)
            v.setdefault("storage", True)

    def validate_crd(self, crd: Obj) -> list[tuple[str, str]]:
        errs: list[tuple[str, str]] = []
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        name = crd["metadata"].get("name", "")
        want = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if name != want:
            errs.append(
                ("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
            )
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(
                (
                    "spec.scope",
                    f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            errs.append(
                ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
            )
        elif sum(1 for v in versions if v.get("storage")) != 1:
            errs.append(
                ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
            )
        if not names.get("kind"):
            errs.append(("spec.names.kind", "Required value"))
        return errs

    def validate(self, rt: ResourceType, obj: Obj) -> list[tuple[str, str]]:
        if rt.schema is None:
            return []
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        schema = dict(rt.schema)
        props = {
            k: v
            for k, v in (schema.get("properties") or {}).items()
            if k not in ("apiVersion", "kind", "metadata")
        }
        schema["properties"] = props
        schema["required"] = [
            r for r in schema.get("required") or [] if r not in ("apiVersion", "kind", "metadata")
        ]
        errs = validate_schema(body, schema, "")
        return [(p.lstrip("."), m.replace(" .", " ")) for p, m in errs]

    def types_of(self, crd: Obj) -> list[ResourceType]:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        out = []
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            subs = v.get("subresources") or {}
            rt = ResourceType(
                group=spec["group"],
                version=v["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(s for s in ("status", "scale") if s in subs),
                has_generation=True,
                schema=_schema_of(v),
                printer_columns=list(v.get("additionalPrinterColumns") or []),
                custom=True,
                list_kind=names.get("listKind") or names["kind"] + "List",
                scale=subs.get("scale"),
            )
            out.append(rt)
        # the storage version first: it is the preferred version in discovery
        storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), None)
        out.sort(key=lambda r: r.version != storage)
        return out

    def on_change(self, old: Obj | None, new: Obj | None) -> None:
        self._on_change(old, new)
        sync_crd_api_services(self.engine)

    def _on_change(self, old: Obj | None, new: Obj | None) -> None:
        reg = self.engine.registry
        if old is not None:
            for rt in self.types_of(old):
                reg.remove(rt.key)
        if new is None:
            if old is not None:
                self._drop_objects(old)
            return
        if new["metadata"].get("deletionTimestamp"):
            return
        for rt in self.types_of(new):
            reg.add(rt)
        self._set_status(new)

    def _drop_objects(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        store = self.engine.store
        t = store.tables.get((spec.get("group", ""), (spec.get("names") or {}).get("plural", "")))
        if t is None:
            return
        for bucket in list(t.by_ns.values()):
            for obj in list(bucket.values()):
                store.remove(t, obj)

    def _set_status(self, crd: Obj) -> None:
        spec = crd["spec"]
        names = dict(spec.get("names") or {})
        conds = [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": _now(),
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": _now(),
            },
        ]
        old_status = crd.get("status") or {}
        if [c.get("type") for c in old_status.get("conditions") or []] == [
            "NamesAccepted",
            "Established",
        ] and old_status.get("acceptedNames") == names:
            return
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        status = {"conditions": conds, "acceptedNames": names, "storedVersions": storage}
        new = dict(crd)
        new["metadata"] = dict(crd["metadata"])  # the store writes its resourceVersion: not the stored one's
        new["status"] = status
        t = self.engine.store.table("apiextensions.k8s.io", "customresourcedefinitions")
        if t.get("", crd["metadata"]["name"]) is crd:
            self.engine.store.put(t, new, crd)
