"""Webhook TLS without cert-manager: a private CA and serving certificate kept in a Secret shared by every
controller replica, injected into the MutatingWebhookConfiguration, renewed before expiry and reloaded
without a restart."""

from fluxqueue.certs.authority import (
    CertMaterial,
    RotationPolicy,
    ServingIdentity,
    make_ca,
    make_serving_cert,
    needs_rotation,
    plan,
)
from fluxqueue.certs.manager import CertificateManager
from fluxqueue.certs.store import CertStore, ResourceClientStore
from fluxqueue.certs.tls import ReloadableServerContext

__all__ = [
    "CertMaterial",
    "CertStore",
    "CertificateManager",
    "ReloadableServerContext",
    "ResourceClientStore",
    "RotationPolicy",
    "ServingIdentity",
    "make_ca",
    "make_serving_cert",
    "needs_rotation",
    "plan",
]
