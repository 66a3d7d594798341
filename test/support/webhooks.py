"""HTTPS admission webhooks for tests: an aiohttp app served with a throwaway CA's certificate (the one the
API emulator makes for itself), and the AdmissionReview answers such a webhook gives."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fluxqueue.sim.apiserver.tls import serving_bundle


@dataclass(frozen=True)
class ServedWebhook:
    url: str  # https://127.0.0.1:<port>, no path
    ca_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """The CA as ``clientConfig.caBundle`` takes it (base64 of the PEM)."""
        return base64.b64encode(self.ca_pem).decode()


@asynccontextmanager
async def serve_https(
    app: web.Application, dns_names: Sequence[str] = ("localhost",)
) -> AsyncIterator[ServedWebhook]:
    """Serve ``app`` on 127.0.0.1 (a free port) over TLS until the block ends."""
    certs = serving_bundle(list(dns_names), ["127.0.0.1"])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certs.server_context())
        await site.start()
        port = runner.addresses[0][1]
        yield ServedWebhook(url=f"https://127.0.0.1:{port}", ca_pem=certs.ca_pem)
    finally:
        await runner.cleanup()


def review_response(
    review: dict[str, Any], patch: list[dict[str, Any]] | None = None, status: dict[str, Any] | None = None
) -> web.Response:
    """The AdmissionReview answer to ``review``: allowed with an optional JSONPatch, or denied with ``status``."""
    resp: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": status is None}
    if patch is not None:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if status is not None:
        resp["status"] = status
    return web.json_response(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}
    )
