"""Self-managed webhook certificates: no cert-manager, no pre-install Job.

Every controller replica runs a ``CertificateManager``. It reads the shared Secret, creates it if missing,
renews what ``authority.plan`` says is due, serves whatever the Secret holds and keeps the webhook
configuration's ``caBundle`` in step. Replicas never coordinate beyond the API server's optimistic
concurrency: a create that meets 409 AlreadyExists, or an update that meets 409 Conflict, means another
replica got there first, so we re-read and adopt its result. All replicas therefore converge on one CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from typing import Any

from cryptography import x509

from fluxqueue.certs.authority import CertMaterial, RotationPolicy, ServingIdentity, load_bundle, plan
from fluxqueue.certs.store import (
    CertStore,
    Conflict,
    NotFound,
    ResourceClientStore,
    ca_bundle_patch,
    material_from_secret,
    new_secret,
    secret_with_material,
)
from fluxqueue.certs.tls import ReloadableServerContext
from fluxqueue.log import get_logger

log = get_logger(__name__)

DEFAULT_LABELS = {
    "app.kubernetes.io/name": "fluxqueue",
    "app.kubernetes.io/component": "webhook-certificates",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateManager:
    """Creates, shares, rotates and serves the webhook's certificates; injects the CA into the webhook.

    ``client`` is either a ``CertStore`` or a Kubernetes client with generic ``get/create/update/patch``
    (see ``fluxqueue.certs.store.ResourceClientStore``).

    Typical use by the controller::

        certs = CertificateManager(kube, namespace=ns, secret_name="fluxqueue-webhook-tls",
                                   webhook_configuration="fluxqueue-webhook",
                                   identity=ServingIdentity.for_service("fluxqueue-webhook", ns))
        await certs.start()                      # first certificate loaded before this returns
        site = web.TCPSite(runner, host, 9443, ssl_context=certs.server_ssl_context)
        ...
        await certs.stop()
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str,
        secret_name: str,
        identity: ServingIdentity,
        webhook_configuration: str | None = None,
        policy: RotationPolicy | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        labels: dict[str, str] | None = None,
        interval: float = 300.0,
        retry_interval: float = 5.0,
        metrics: Any = None,
    ) -> None:
        self.store: CertStore = client if hasattr(client, "get_secret") else ResourceClientStore(client)
        self.namespace = namespace
        self.secret_name = secret_name
        self.identity = identity
        self.webhook_configuration = webhook_configuration
        self.policy = policy or RotationPolicy()
        self.clock = clock
        self.labels = dict(labels or DEFAULT_LABELS)
        self.interval = interval
        self.retry_interval = retry_interval
        # A fluxqueue.metrics.Metrics (optional): the served certificate's expiry is exported for alerting.
        self.metrics = metrics
        self.material: CertMaterial | None = None
        self.injected = False
        self._tls = ReloadableServerContext()
        self._task: asyncio.Task | None = None

    # -- what the server uses

    @property
    def server_ssl_context(self) -> ssl.SSLContext:
        """The context to give the HTTPS server once; it always presents the current certificate."""
        return self._tls.outer

    @property
    def ready(self) -> bool:
        """A certificate is loaded and (when we manage one) the webhook trusts our CA."""
        return self._tls.loaded and (self.injected or self.webhook_configuration is None)

    @property
    def ca_bundle(self) -> bytes:
        return self.material.ca_bundle if self.material else b""

    @property
    def reloads(self) -> int:
        return self._tls.reloads

    # -- reconciliation

    async def reconcile(self) -> CertMaterial:
        """One pass: converge the Secret, the served certificate and the caBundle. Returns what is served."""
        material = await self._converge_secret()
        if self._tls.cert_pem != material.tls_cert:
            await self._tls.aload(material.tls_cert, material.tls_key)
            expires = x509.load_pem_x509_certificate(material.tls_cert).not_valid_after_utc
            log.info(
                "serving certificate loaded",
                secret=f"{self.namespace}/{self.secret_name}",
                expires=expires.isoformat(),
            )
            if self.metrics is not None:
                self.metrics.certificate_expiry.set(expires.timestamp())
        self.material = material
        if self.webhook_configuration:
            self.injected = await self._inject(material.ca_bundle)
        return material

    async def _converge_secret(self) -> CertMaterial:
        for _ in range(8):
            try:
                secret: dict | None = await self.store.get_secret(self.namespace, self.secret_name)
            except NotFound:
                secret = None
            current = material_from_secret(secret) if secret is not None else None
            wanted = plan(current, self.identity, self.clock(), self.policy)
            if wanted is None:
                assert current is not None
                return current
            try:
                if secret is None:
                    body = new_secret(self.namespace, self.secret_name, wanted, self.labels)
                    await self.store.create_secret(self.namespace, body)
                else:
                    # The body carries the resourceVersion we read: a concurrent writer makes this a 409.
                    await self.store.update_secret(self.namespace, secret_with_material(secret, wanted))
            except Conflict:
                log.info("certificate secret changed concurrently; adopting", secret=self.secret_name)
                continue
            log.info("certificate secret written", secret=self.secret_name, why="; ".join(wanted.reasons))
            return wanted
        raise RuntimeError(
            f"could not converge Secret {self.namespace}/{self.secret_name}: too many conflicts"
        )

    async def _inject(self, bundle: bytes) -> bool:
        try:
            config = await self.store.get_webhook_configuration(self.webhook_configuration)
            ops = ca_bundle_patch(config, bundle)
            if ops:
                await self.store.patch_webhook_configuration(self.webhook_configuration, ops)
                log.info(
                    "CA bundle injected",
                    webhook=self.webhook_configuration,
                    entries=len(ops) // 2,
                    cas=len(load_bundle(bundle)),
                )
            return True
        except NotFound:
            log.info("webhook configuration not found yet", webhook=self.webhook_configuration)
        except Exception as exc:  # a reshaped configuration (failed test op) or a transient API error
            log.warning(
                "CA bundle injection failed; will retry", webhook=self.webhook_configuration, error=str(exc)
            )
        return False

    # -- lifecycle

    async def start(self) -> None:
        """Reconcile until a certificate is served, then keep reconciling in the background."""
        while True:
            try:
                await self.reconcile()
                break
            except Exception as exc:
                log.warning("certificate bootstrap failed; retrying", error=str(exc))
                await asyncio.sleep(self.retry_interval)
        self._task = asyncio.create_task(self._loop(), name="fluxqueue-certificates")

    async def _loop(self) -> None:
        while True:
            # Until the webhook trusts us, retry often; afterwards a slow beat is enough (renewal happens
            # months ahead of expiry; the re-read also picks up another replica's rotation).
            await asyncio.sleep(self.interval if self.ready else self.retry_interval)
            try:
                await self.reconcile()
            except Exception as exc:
                log.warning("certificate reconcile failed", error=str(exc))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
