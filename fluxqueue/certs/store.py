"""Where certificates live in Kubernetes: one Secret, plus the webhook configuration's ``caBundle``.

The manager only needs a handful of calls, so it codes against a small protocol (``CertStore``) rather than
a particular client. ``ResourceClientStore`` adapts any client with the generic verb methods
``get/create/update/patch(resource, ...)`` over plain-dict objects -- the controller's ``fluxqueue.kube.client``
and the emulator's in-process client both have that shape.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Protocol

from fluxqueue.certs.authority import CertMaterial
from fluxqueue.kube.names import PREFIX

SECRETS = ("", "v1", "secrets")
MUTATING_WEBHOOK_CONFIGURATIONS = ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")

# Secret keys: tls.crt/tls.key/ca.crt as in a kubernetes.io/tls Secret, so tools that read those just work.
KEY_TLS_CERT = "tls.crt"
KEY_TLS_KEY = "tls.key"
KEY_CA_CERT = "ca.crt"
KEY_CA_KEY = "ca.key"
KEY_CA_BUNDLE = "ca-bundle.crt"
ANNOTATION_CA_STAGED_AT = PREFIX + "ca-staged-at"


class NotFound(Exception):
    pass


class Conflict(Exception):
    """Someone else created or changed the object first."""


class CertStore(Protocol):
    async def get_secret(self, namespace: str, name: str) -> dict:  # raises NotFound
        ...

    async def create_secret(self, namespace: str, body: dict) -> dict:  # raises Conflict when it exists
        ...

    async def update_secret(self, namespace: str, body: dict) -> dict:  # raises Conflict on a stale version
        ...

    async def get_webhook_configuration(self, name: str) -> dict:  # raises NotFound
        ...

    async def patch_webhook_configuration(
        self, name: str, json_patch: list[dict]
    ) -> dict:  # NotFound, Conflict
        ...


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a client error, whichever attribute the client uses for it."""
    for attr in ("code", "status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None


class ResourceClientStore:
    """``CertStore`` over a client with ``get/create/update/patch(resource, ...)`` methods and dict bodies.

    ``resource`` values default to the ``(group, version, plural)`` tuples both fluxqueue clients use."""

    def __init__(
        self,
        client: Any,
        secrets: Any = SECRETS,
        webhook_configurations: Any = MUTATING_WEBHOOK_CONFIGURATIONS,
    ) -> None:
        self.client = client
        self.secrets = secrets
        self.webhooks = webhook_configurations

    async def _call(self, coro):
        try:
            return await coro
        except Exception as exc:
            code = _status_code(exc)
            if code == 404:
                raise NotFound(str(exc)) from exc
            if code == 409:
                raise Conflict(str(exc)) from exc
            raise

    async def get_secret(self, namespace: str, name: str) -> dict:
        return await self._call(self.client.get(self.secrets, name, namespace=namespace))

    async def create_secret(self, namespace: str, body: dict) -> dict:
        return await self._call(self.client.create(self.secrets, body, namespace=namespace))

    async def update_secret(self, namespace: str, body: dict) -> dict:
        return await self._call(self.client.update(self.secrets, body, namespace=namespace))

    async def get_webhook_configuration(self, name: str) -> dict:
        return await self._call(self.client.get(self.webhooks, name))

    async def patch_webhook_configuration(self, name: str, json_patch: list[dict]) -> dict:
        return await self._call(self.client.patch(self.webhooks, name, json_patch, patch_type="json"))


# ---------------------------------------------------------------------------------------------------------
# Secret <-> material


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def material_from_secret(secret: dict) -> CertMaterial | None:
    """The material in a Secret, or None when it holds none (yet) or only part of it."""
    data = secret.get("data") or {}
    try:
        fields = {k: base64.b64decode(data[k]) for k in (KEY_CA_CERT, KEY_CA_KEY, KEY_TLS_CERT, KEY_TLS_KEY)}
        bundle = base64.b64decode(data.get(KEY_CA_BUNDLE) or data[KEY_CA_CERT])
    except (KeyError, ValueError):
        return None
    staged = (secret.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_CA_STAGED_AT)
    try:
        staged_at = dt.datetime.fromisoformat(staged) if staged else None
    except ValueError:
        staged_at = None
    return CertMaterial(
        ca_cert=fields[KEY_CA_CERT],
        ca_key=fields[KEY_CA_KEY],
        ca_bundle=bundle,
        tls_cert=fields[KEY_TLS_CERT],
        tls_key=fields[KEY_TLS_KEY],
        ca_staged_at=staged_at,
    )


def secret_with_material(secret: dict, material: CertMaterial) -> dict:
    """``secret`` (possibly a fresh skeleton) carrying ``material``; keeps its other metadata and version."""
    body = dict(secret)
    metadata = dict(body.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    if material.ca_staged_at is not None:
        annotations[ANNOTATION_CA_STAGED_AT] = material.ca_staged_at.isoformat()
    else:
        annotations.pop(ANNOTATION_CA_STAGED_AT, None)
    metadata["annotations"] = annotations
    body["metadata"] = metadata
    body.setdefault("apiVersion", "v1")
    body.setdefault("kind", "Secret")
    body["type"] = body.get("type") or "Opaque"
    data = dict(body.get("data") or {})
    data.update(
        {
            KEY_CA_CERT: _b64(material.ca_cert),
            KEY_CA_KEY: _b64(material.ca_key),
            KEY_CA_BUNDLE: _b64(material.ca_bundle),
            KEY_TLS_CERT: _b64(material.tls_cert),
            KEY_TLS_KEY: _b64(material.tls_key),
        }
    )
    body["data"] = data
    return body


def new_secret(namespace: str, name: str, material: CertMaterial, labels: dict[str, str]) -> dict:
    skeleton = {"metadata": {"name": name, "namespace": namespace, "labels": dict(labels)}}
    return secret_with_material(skeleton, material)


def ca_bundle_patch(webhook_configuration: dict, ca_bundle: bytes) -> list[dict]:
    """A JSON patch setting ``caBundle`` on every webhook entry that does not already carry it.

    Each replacement is guarded by a ``test`` of the entry's name, so a configuration reshaped since we read
    it (a helm upgrade) fails the patch instead of receiving the bundle at the wrong index."""
    encoded = _b64(ca_bundle)
    ops: list[dict] = []
    for i, hook in enumerate(webhook_configuration.get("webhooks") or []):
        if (hook.get("clientConfig") or {}).get("caBundle") == encoded:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook["name"]})
        # "add" on an existing member replaces it (RFC 6902 §4.1), so this works with or without a caBundle.
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded})
    return ops
