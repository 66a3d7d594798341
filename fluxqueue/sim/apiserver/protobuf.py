"""Just enough of the Kubernetes protobuf encoding to accept what helm writes: Secrets and ConfigMaps.

client-go typed clients (helm's release storage) POST/PUT ``application/vnd.kubernetes.protobuf``: the bytes
``k8s\\x00`` then a runtime.Unknown {typeMeta, raw} whose ``raw`` is the object (k8s.io/api core/v1
generated.proto field numbers). Responses stay JSON, which those clients also accept.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from .errors import APIError

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value): varints as int, length-delimited as bytes."""
    out = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i : i + n], i + n
        elif wire == 1:
            v, i = buf[i : i + 8], i + 8
        elif wire == 5:
            v, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, v))
    return out


def _map(entries: list[bytes], binary: bool = False) -> dict[str, str]:
    out = {}
    for e in entries:
        kv = dict(fields(e))
        key = kv.get(1, b"").decode()
        val = kv.get(2, b"")
        out[key] = base64.b64encode(val).decode() if binary else val.decode()
    return out


def _time(buf: bytes) -> str:
    f = dict(fields(buf))
    return datetime.datetime.fromtimestamp(f.get(1, 0), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object_meta(buf: bytes) -> dict[str, Any]:
    md: dict[str, Any] = {}
    labels, annotations, finalizers, owners = [], [], [], []
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for num, v in fields(buf):
        if num in names:
            if v:
                md[names[num]] = v.decode()
        elif num == 7:
            md["generation"] = v
        elif num == 8:
            md["creationTimestamp"] = _time(v)
        elif num == 11:
            labels.append(v)
        elif num == 12:
            annotations.append(v)
        elif num == 13:
            owners.append(v)
        elif num == 14:
            finalizers.append(v.decode())
    if labels:
        md["labels"] = _map(labels)
    if annotations:
        md["annotations"] = _map(annotations)
    if finalizers:
        md["finalizers"] = finalizers
    if owners:
        refs = []
        for o in owners:
            f = dict(fields(o))
            ref = {
                "apiVersion": f.get(5, b"").decode(),
                "kind": f.get(1, b"").decode(),
                "name": f.get(3, b"").decode(),
                "uid": f.get(4, b"").decode(),
            }
            if 6 in f:
                ref["controller"] = bool(f[6])
            if 7 in f:
                ref["blockOwnerDeletion"] = bool(f[7])
            refs.append(ref)
        md["ownerReferences"] = refs
    return md


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise APIError(400, "BadRequest", "protobuf body without the k8s envelope")
    unknown = dict(fields(body[len(MAGIC) :]))
    tm = dict(fields(unknown.get(1, b"")))
    api_version, kind = tm.get(1, b"").decode(), tm.get(2, b"").decode()
    raw = unknown.get(2, b"")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    if kind == "DeleteOptions":
        return _delete_options(raw, obj)
    if (api_version, kind) not in (("v1", "Secret"), ("v1", "ConfigMap")):
        raise APIError(
            415,
            "UnsupportedMediaType",
            f"the emulator decodes protobuf only for Secrets and ConfigMaps, not {kind}; send application/json",
        )
    data, other = [], []
    for num, v in fields(raw):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            data.append(v)
        elif num == 3:
            if kind == "Secret":
                obj["type"] = v.decode()
            else:
                other.append(v)
        elif num == 4 and kind == "Secret":
            obj.setdefault("stringData", {}).update(_map([v]))
        elif (num == 5 and kind == "Secret") or (num == 4 and kind == "ConfigMap"):
            obj["immutable"] = bool(v)
    if data:
        obj["data"] = _map(data, binary=kind == "Secret")
    if other:
        obj["binaryData"] = _map(other, binary=True)
    obj.setdefault("metadata", {})
    return obj


def _delete_options(raw: bytes, obj: dict[str, Any]) -> dict[str, Any]:
    """meta/v1 DeleteOptions: gracePeriodSeconds=1, preconditions=2, orphanDependents=3, propagationPolicy=4, dryRun=5."""
    for num, v in fields(raw):
        if num == 1:
            obj["gracePeriodSeconds"] = v
        elif num == 2:
            p = dict(fields(v))
            obj["preconditions"] = {
                k: p[n].decode() for n, k in ((1, "uid"), (2, "resourceVersion")) if n in p
            }
        elif num == 3:
            obj["orphanDependents"] = bool(v)
        elif num == 4:
            obj["propagationPolicy"] = v.decode()
        elif num == 5:
            obj.setdefault("dryRun", []).append(v.decode())
    return obj
