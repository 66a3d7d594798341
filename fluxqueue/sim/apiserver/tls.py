"""A throwaway CA and a serving certificate for the emulator's HTTPS endpoint.

The certificates come from :mod:`fluxqueue.certs.authority`, the same pure functions the webhook's own CA
uses (the emulator may depend on fluxqueue code, never the reverse); only the one-year lifetime is chosen
here: the emulator's CA lives as long as the process.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass

from fluxqueue.certs.authority import ServingIdentity, make_ca, make_serving_cert
from fluxqueue.certs.tls import context_from_pem

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertBundle:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        # The chain includes the CA so clients that only pin the leaf's issuer by name still verify it.
        return context_from_pem(self.cert_pem + self.ca_pem, self.key_pem)


def serving_bundle(
    dns_names: list[str] | None = None, ips: list[str] | None = None, common_name: str = "fluxqueue-sim"
) -> CertBundle:
    """A new CA and a serving certificate it signed for ``dns_names`` and ``ips``."""
    now = dt.datetime.now(dt.UTC)
    ca_pem, ca_key = make_ca(now, VALIDITY, common_name + "-ca")
    identity = ServingIdentity(
        dns_names=tuple(dns_names or ["localhost", "kubernetes.default.svc"]),
        ip_addresses=tuple(ips or ["127.0.0.1", "::1"]),
    )
    cert_pem, key_pem = make_serving_cert(ca_pem, ca_key, identity, now, VALIDITY)
    return CertBundle(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)
