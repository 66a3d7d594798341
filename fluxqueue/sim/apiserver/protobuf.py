"""Decoding the Kubernetes protobuf encoding of request bodies (what Go clients send for built-in types).

client-go typed clients (``kubectl create namespace|job|deployment``, helm's release Secrets) POST/PUT/DELETE
``application/vnd.kubernetes.protobuf``: ``k8s\\x00`` then a runtime.Unknown {typeMeta, raw} whose ``raw`` is
the object. Responses stay JSON, which those clients accept too.

Field numbers: ``k8s_proto_fields.json`` holds the message tables of k8s.io/api core/v1 and apimachinery
meta/v1 generated.proto (extracted from the descriptors the ``k8s-proto`` 0.0.3 package on PyPI ships, a
Kubernetes 1.1x snapshot; field numbers never change once assigned). Newer fields and the batch, apps,
rbac, scheduling and coordination groups are added below from the ``protobuf:"...,N,..."`` tags of
k8s.io/api types.go. Unknown field numbers are skipped, as proto decoders do.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import os
import struct
from typing import Any

from .errors import APIError

MAGIC = b"k8s\x00"
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
CORE = "k8s.io.api.core.v1."
OM = META + "ObjectMeta"
LS = META + "LabelSelector"
PTS = CORE + "PodTemplateSpec"
IOS = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
Q = "k8s.io.apimachinery.pkg.api.resource.Quantity"


def _o(num: int, name: str, typ: str) -> list[Any]:
    return [num, name, "one", typ]


def _l(num: int, name: str, typ: str) -> list[Any]:
    return [num, name, "list", typ]


# Fields and messages newer than the extracted snapshot (k8s.io/api types.go protobuf tags).
_EXTRA_FIELDS: dict[str, list[list[Any]]] = {
    CORE + "PodSpec": [
        _o(31, "preemptionPolicy", "string"),
        [32, "overhead", "map", Q],
        _l(33, "topologySpreadConstraints", CORE + "TopologySpreadConstraint"),
        _l(34, "ephemeralContainers", CORE + "EphemeralContainer"),
        _o(35, "setHostnameAsFQDN", "bool"),
        _o(36, "os", CORE + "PodOS"),
        _o(37, "hostUsers", "bool"),
        _l(38, "schedulingGates", CORE + "PodSchedulingGate"),
        _l(39, "resourceClaims", CORE + "PodResourceClaim"),
        _o(40, "resources", CORE + "ResourceRequirements"),
        _o(41, "hostnameOverride", "string"),
    ],
    CORE + "Container": [
        _o(22, "startupProbe", CORE + "Probe"),
        _l(23, "resizePolicy", CORE + "ContainerResizePolicy"),
        _o(24, "restartPolicy", "string"),
    ],
    CORE + "ResourceRequirements": [_l(3, "claims", CORE + "ResourceClaim")],
    CORE + "ConfigMap": [_o(4, "immutable", "bool")],
    CORE + "Secret": [_o(5, "immutable", "bool")],
    META + "ManagedFieldsEntry": [
        _o(6, "fieldsType", "string"),
        _o(7, "fieldsV1", META + "FieldsV1"),
        _o(8, "subresource", "string"),
    ],
}
_EXTRA_MESSAGES: dict[str, list[list[Any]]] = {
    CORE + "PodSchedulingGate": [_o(1, "name", "string")],
    CORE + "PodOS": [_o(1, "name", "string")],
    CORE + "ResourceClaim": [_o(1, "name", "string"), _o(2, "request", "string")],
    CORE + "PodResourceClaim": [
        _o(1, "name", "string"),
        _o(3, "resourceClaimName", "string"),
        _o(4, "resourceClaimTemplateName", "string"),
    ],
    CORE + "ContainerResizePolicy": [_o(1, "resourceName", "string"), _o(2, "restartPolicy", "string")],
    CORE + "TopologySpreadConstraint": [
        _o(1, "maxSkew", "int32"),
        _o(2, "topologyKey", "string"),
        _o(3, "whenUnsatisfiable", "string"),
        _o(4, "labelSelector", LS),
        _o(5, "minDomains", "int32"),
        _o(6, "nodeAffinityPolicy", "string"),
        _o(7, "nodeTaintsPolicy", "string"),
        _l(8, "matchLabelKeys", "string"),
    ],
    META + "FieldsV1": [_o(1, "Raw", "bytes")],
    "k8s.io.api.batch.v1.Job": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.batch.v1.JobSpec"),
        _o(3, "status", "k8s.io.api.batch.v1.JobStatus"),
    ],
    "k8s.io.api.batch.v1.JobSpec": [
        _o(1, "parallelism", "int32"),
        _o(2, "completions", "int32"),
        _o(3, "activeDeadlineSeconds", "int64"),
        _o(4, "selector", LS),
        _o(5, "manualSelector", "bool"),
        _o(6, "template", PTS),
        _o(7, "backoffLimit", "int32"),
        _o(8, "ttlSecondsAfterFinished", "int32"),
        _o(9, "completionMode", "string"),
        _o(10, "suspend", "bool"),
        _o(12, "backoffLimitPerIndex", "int32"),
        _o(13, "maxFailedIndexes", "int32"),
        _o(14, "podReplacementPolicy", "string"),
        _o(15, "managedBy", "string"),
    ],
    "k8s.io.api.batch.v1.JobStatus": [],
    "k8s.io.api.batch.v1.CronJob": [_o(1, "metadata", OM), _o(2, "spec", "k8s.io.api.batch.v1.CronJobSpec")],
    "k8s.io.api.batch.v1.CronJobSpec": [
        _o(1, "schedule", "string"),
        _o(2, "startingDeadlineSeconds", "int64"),
        _o(3, "concurrencyPolicy", "string"),
        _o(4, "suspend", "bool"),
        _o(5, "jobTemplate", "k8s.io.api.batch.v1.JobTemplateSpec"),
        _o(6, "successfulJobsHistoryLimit", "int32"),
        _o(7, "failedJobsHistoryLimit", "int32"),
        _o(8, "timeZone", "string"),
    ],
    "k8s.io.api.batch.v1.JobTemplateSpec": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.batch.v1.JobSpec"),
    ],
    "k8s.io.api.apps.v1.Deployment": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.apps.v1.DeploymentSpec"),
    ],
    "k8s.io.api.apps.v1.DeploymentSpec": [
        _o(1, "replicas", "int32"),
        _o(2, "selector", LS),
        _o(3, "template", PTS),
        _o(4, "strategy", "k8s.io.api.apps.v1.DeploymentStrategy"),
        _o(5, "minReadySeconds", "int32"),
        _o(6, "revisionHistoryLimit", "int32"),
        _o(7, "paused", "bool"),
        _o(9, "progressDeadlineSeconds", "int32"),
    ],
    "k8s.io.api.apps.v1.DeploymentStrategy": [
        _o(1, "type", "string"),
        _o(2, "rollingUpdate", "k8s.io.api.apps.v1.RollingUpdateDeployment"),
    ],
    "k8s.io.api.apps.v1.RollingUpdateDeployment": [_o(1, "maxUnavailable", IOS), _o(2, "maxSurge", IOS)],
    "k8s.io.api.rbac.v1.Role": [_o(1, "metadata", OM), _l(2, "rules", "k8s.io.api.rbac.v1.PolicyRule")],
    "k8s.io.api.rbac.v1.ClusterRole": [
        _o(1, "metadata", OM),
        _l(2, "rules", "k8s.io.api.rbac.v1.PolicyRule"),
    ],
    "k8s.io.api.rbac.v1.PolicyRule": [
        _l(1, "verbs", "string"),
        _l(2, "apiGroups", "string"),
        _l(3, "resources", "string"),
        _l(4, "resourceNames", "string"),
        _l(5, "nonResourceURLs", "string"),
    ],
    "k8s.io.api.rbac.v1.RoleBinding": [
        _o(1, "metadata", OM),
        _l(2, "subjects", "k8s.io.api.rbac.v1.Subject"),
        _o(3, "roleRef", "k8s.io.api.rbac.v1.RoleRef"),
    ],
    "k8s.io.api.rbac.v1.ClusterRoleBinding": [
        _o(1, "metadata", OM),
        _l(2, "subjects", "k8s.io.api.rbac.v1.Subject"),
        _o(3, "roleRef", "k8s.io.api.rbac.v1.RoleRef"),
    ],
    "k8s.io.api.rbac.v1.Subject": [
        _o(1, "kind", "string"),
        _o(2, "apiGroup", "string"),
        _o(3, "name", "string"),
        _o(4, "namespace", "string"),
    ],
    "k8s.io.api.rbac.v1.RoleRef": [
        _o(1, "apiGroup", "string"),
        _o(2, "kind", "string"),
        _o(3, "name", "string"),
    ],
    "k8s.io.api.scheduling.v1.PriorityClass": [
        _o(1, "metadata", OM),
        _o(2, "value", "int32"),
        _o(3, "globalDefault", "bool"),
        _o(4, "description", "string"),
        _o(5, "preemptionPolicy", "string"),
    ],
    "k8s.io.api.coordination.v1.Lease": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.coordination.v1.LeaseSpec"),
    ],
    "k8s.io.api.coordination.v1.LeaseSpec": [
        _o(1, "holderIdentity", "string"),
        _o(2, "leaseDurationSeconds", "int32"),
        _o(3, "acquireTime", META + "MicroTime"),
        _o(4, "renewTime", META + "MicroTime"),
        _o(5, "leaseTransitions", "int32"),
        _o(6, "strategy", "string"),
        _o(7, "preferredHolder", "string"),
    ],
    "k8s.io.api.authorization.v1.SelfSubjectAccessReview": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.authorization.v1.SelfSubjectAccessReviewSpec"),
    ],
    "k8s.io.api.authorization.v1.SelfSubjectAccessReviewSpec": [
        _o(1, "resourceAttributes", "k8s.io.api.authorization.v1.ResourceAttributes"),
        _o(2, "nonResourceAttributes", "k8s.io.api.authorization.v1.NonResourceAttributes"),
    ],
    "k8s.io.api.authorization.v1.ResourceAttributes": [
        _o(1, "namespace", "string"),
        _o(2, "verb", "string"),
        _o(3, "group", "string"),
        _o(4, "version", "string"),
        _o(5, "resource", "string"),
        _o(6, "subresource", "string"),
        _o(7, "name", "string"),
    ],
    "k8s.io.api.authorization.v1.NonResourceAttributes": [_o(1, "path", "string"), _o(2, "verb", "string")],
    "k8s.io.api.authorization.v1.SelfSubjectRulesReview": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.authorization.v1.SelfSubjectRulesReviewSpec"),
    ],
    "k8s.io.api.authorization.v1.SelfSubjectRulesReviewSpec": [_o(1, "namespace", "string")],
    "k8s.io.api.authentication.v1.SelfSubjectReview": [_o(1, "metadata", OM)],
    # authentication/v1 types.go: TokenRequest (kubectl create token), TokenReview
    "k8s.io.api.authentication.v1.TokenRequest": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.authentication.v1.TokenRequestSpec"),
    ],
    "k8s.io.api.authentication.v1.TokenRequestSpec": [
        _l(1, "audiences", "string"),
        _o(3, "boundObjectRef", "k8s.io.api.authentication.v1.BoundObjectReference"),
        _o(4, "expirationSeconds", "int64"),
    ],
    "k8s.io.api.authentication.v1.BoundObjectReference": [
        _o(1, "kind", "string"),
        _o(2, "apiVersion", "string"),
        _o(3, "name", "string"),
        _o(4, "uid", "string"),
    ],
    "k8s.io.api.authentication.v1.TokenReview": [
        _o(1, "metadata", OM),
        _o(2, "spec", "k8s.io.api.authentication.v1.TokenReviewSpec"),
    ],
    "k8s.io.api.authentication.v1.TokenReviewSpec": [_o(1, "token", "string"), _l(2, "audiences", "string")],
}
_GROUP_PACKAGES = {
    "authorization.k8s.io/v1": "k8s.io.api.authorization.v1.",
    "authentication.k8s.io/v1": "k8s.io.api.authentication.v1.",
    "v1": "k8s.io.api.core.v1.",
    "batch/v1": "k8s.io.api.batch.v1.",
    "apps/v1": "k8s.io.api.apps.v1.",
    "rbac.authorization.k8s.io/v1": "k8s.io.api.rbac.v1.",
    "scheduling.k8s.io/v1": "k8s.io.api.scheduling.v1.",
    "coordination.k8s.io/v1": "k8s.io.api.coordination.v1.",
    "meta.k8s.io/v1": META,
}


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, dict[int, tuple[str, str, str]]]:
    with open(os.path.join(os.path.dirname(__file__), "k8s_proto_fields.json")) as f:
        raw: dict[str, list[list[Any]]] = json.load(f)
    for msg, fields in _EXTRA_FIELDS.items():
        raw.setdefault(msg, []).extend(fields)
    raw.update(_EXTRA_MESSAGES)
    return {msg: {f[0]: (f[1], f[2], f[3]) for f in fields} for msg, fields in raw.items()}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def wire_fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value): varints as int, length-delimited as bytes, fixed as raw bytes."""
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
        out.append((num, wire, v))
    return out


def _rfc3339(buf: bytes, micro: bool) -> str | None:
    f = {n: v for n, _w, v in wire_fields(buf)}
    if f.get(1, 0) <= 0 or f.get(1, 0) >= 1 << 63:
        return None  # Go's zero time, which JSON encodes as null
    t = datetime.datetime.fromtimestamp(f.get(1, 0) + f.get(2, 0) / 1e9, datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _scalar(typ: str, wire: int, v: Any) -> Any:
    if typ == "string":
        return v.decode()
    if typ == "bytes":
        return base64.b64encode(v).decode()
    if typ == "bool":
        return bool(v)
    if typ in ("int64", "int32", "uint32", "uint64", "enum"):
        return v - (1 << 64) if v >= 1 << 63 else v
    if typ == "double":
        return struct.unpack("<d", v)[0]
    if typ == "float":
        return struct.unpack("<f", v)[0]
    return v


def decode_message(buf: bytes, msg: str) -> Any:
    """One message as its JSON form (the special apimachinery types become their JSON encodings)."""
    if msg == META + "Time":
        return _rfc3339(buf, micro=False)
    if msg == META + "MicroTime":
        return _rfc3339(buf, micro=True)
    if msg == Q:
        return {n: v for n, _w, v in wire_fields(buf)}.get(1, b"").decode()
    if msg == IOS:
        f = {n: v for n, _w, v in wire_fields(buf)}
        return f.get(3, b"").decode() if f.get(1, 0) == 1 else f.get(2, 0)
    if msg in ("k8s.io.apimachinery.pkg.runtime.RawExtension", META + "FieldsV1"):
        raw = {n: v for n, _w, v in wire_fields(buf)}.get(1, b"")
        return json.loads(raw) if raw else {}
    table = _tables().get(msg)
    if table is None:
        return {}
    out: dict[str, Any] = {}
    for num, wire, v in wire_fields(buf):
        spec = table.get(num)
        if spec is None:
            continue
        name, shape, typ = spec
        if shape == "map":
            entry = {n: (w, x) for n, w, x in wire_fields(v)}
            key = entry.get(1, (2, b""))[1].decode()
            vw, vv = entry.get(2, (2, b""))
            out.setdefault(name, {})[key] = decode_message(vv, typ) if "." in typ else _scalar(typ, vw, vv)
            continue
        if "." in typ:
            value = decode_message(v, typ)
        elif wire == 2 and typ not in ("string", "bytes"):
            # packed repeated scalars
            value = []
            j = 0
            while j < len(v):
                x, j = _varint(v, j)
                value.append(_scalar(typ, 0, x))
            out.setdefault(name, []).extend(value)
            continue
        else:
            value = _scalar(typ, wire, v)
        if shape == "list":
            out.setdefault(name, []).append(value)
        elif value == "" or value is False or value is None:
            continue  # Go writes non-pointer zero values; JSON omits them (omitempty)
        else:
            out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise APIError(400, "BadRequest", "protobuf body without the k8s envelope")
    unknown = {n: v for n, _w, v in wire_fields(body[len(MAGIC) :])}
    tm = {n: v for n, _w, v in wire_fields(unknown.get(1, b""))}
    api_version, kind = tm.get(1, b"").decode(), tm.get(2, b"").decode()
    package = _GROUP_PACKAGES.get(api_version)
    if kind == "DeleteOptions":
        package = META
    msg = (package or "") + kind
    if package is None or msg not in _tables():
        raise APIError(
            415,
            "UnsupportedMediaType",
            f"the emulator cannot decode protobuf for {api_version} {kind}; send application/json",
        )
    obj = decode_message(unknown.get(2, b""), msg)
    obj["apiVersion"], obj["kind"] = api_version, kind
    obj.setdefault("metadata", {})
    return obj
