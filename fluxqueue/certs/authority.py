"""The webhook's private certificate authority, as pure functions: no I/O, the clock is an argument.

A CA signs one serving certificate for the webhook Service. Both are renewed when less than a third of their
validity remains (the rule Kueue's cert-controller and YuniKorn's admission controller follow in spirit: renew
long before expiry, never on the last day). The CA lives much longer than the serving certificate.

CA rollover never breaks the API server's trust: a new CA first joins the bundle next to the old one (the
bundle is what goes into the webhook's ``caBundle``); only after ``grace`` has passed, enough for every
replica and the API server to see the new bundle, is the serving certificate re-issued from the new CA. Old
CAs stay in the bundle until they expire.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates are back-dated a little so a replica whose clock runs behind still accepts them.
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class RotationPolicy:
    ca_validity: dt.timedelta = dt.timedelta(days=5 * 365)
    serving_validity: dt.timedelta = dt.timedelta(days=365)
    # Renew when less than this fraction of the validity remains.
    renew_fraction: float = 1 / 3
    # How long a new CA sits in the bundle before the serving certificate moves to it.
    grace: dt.timedelta = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class ServingIdentity:
    """The names the serving certificate must carry (its subjectAltNames)."""

    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()

    @classmethod
    def for_service(
        cls, service: str, namespace: str, extra_dns: tuple[str, ...] = (), extra_ips: tuple[str, ...] = ()
    ) -> ServingIdentity:
        # The API server dials a webhook Service as <svc>.<ns>.svc and verifies that name (Kubernetes docs,
        # "Dynamic Admission Control": service reference); the cluster.local form is for in-cluster clients.
        names = (
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
            f"{service}.{namespace}",
            service,
        )
        return cls(dns_names=_unique(names + tuple(extra_dns)), ip_addresses=_unique(tuple(extra_ips)))

    @property
    def common_name(self) -> str:
        return self.dns_names[0] if self.dns_names else self.ip_addresses[0]

    def subject_alt_names(self) -> list[x509.GeneralName]:
        return [x509.DNSName(n) for n in self.dns_names] + [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.ip_addresses
        ]


@dataclass(frozen=True)
class CertMaterial:
    """Everything the Secret holds, as PEM bytes."""

    ca_cert: bytes  # the CA that signs new serving certificates
    ca_key: bytes
    ca_bundle: bytes  # every CA a client should trust: the current one first, then still-valid old ones
    tls_cert: bytes
    tls_key: bytes
    # When the current CA joined the bundle; None when it was there from the start.
    ca_staged_at: dt.datetime | None = None
    reasons: tuple[str, ...] = field(default=(), compare=False)


# ---------------------------------------------------------------------------------------------------------
# Building blocks


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by the API server, and generated in microseconds rather than RSA's tens of milliseconds.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(
    now: dt.datetime, validity: dt.timedelta, common_name: str = "fluxqueue-webhook-ca"
) -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its key, as PEM (cert, key)."""
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fluxqueue"),
            # The timestamp keeps successive CAs' subjects distinct, so chains never confuse them.
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name}@{int(now.timestamp())}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def make_serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    identity: ServingIdentity,
    now: dt.datetime,
    validity: dt.timedelta,
) -> tuple[bytes, bytes]:
    """A TLS server certificate for ``identity`` signed by the CA, as PEM (cert, key).

    Its expiry never outlives the CA's (a chain is only as valid as its shortest link)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = _new_key()
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(identity.subject_alt_names()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def needs_rotation(cert: x509.Certificate, now: dt.datetime, fraction: float = 1 / 3) -> bool:
    """True when less than ``fraction`` of the certificate's validity remains (or it is not yet valid)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return True
    return (end - now) < (end - start) * fraction


def load_bundle(pem: bytes) -> list[x509.Certificate]:
    if not pem.strip():
        return []
    return x509.load_pem_x509_certificates(pem)


def bundle_pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(_cert_pem(c) for c in certs)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when ``ca``'s key signed ``cert``."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def covers(cert: x509.Certificate, identity: ServingIdentity) -> bool:
    """True when the certificate names every DNS name and IP address of the identity."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return (
        set(identity.dns_names) <= dns
        and {str(ipaddress.ip_address(i)) for i in identity.ip_addresses} <= ips
    )


def _key_matches(cert: x509.Certificate, key_pem: bytes) -> bool:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.DER, pub) == cert.public_key().public_bytes(
        serialization.Encoding.DER, pub
    )


# ---------------------------------------------------------------------------------------------------------
# The decision


def fresh_material(identity: ServingIdentity, now: dt.datetime, policy: RotationPolicy) -> CertMaterial:
    ca_cert, ca_key = make_ca(now, policy.ca_validity)
    tls_cert, tls_key = make_serving_cert(ca_cert, ca_key, identity, now, policy.serving_validity)
    return CertMaterial(
        ca_cert, ca_key, ca_cert, tls_cert, tls_key, None, ("new CA and serving certificate",)
    )


def plan(
    material: CertMaterial | None, identity: ServingIdentity, now: dt.datetime, policy: RotationPolicy
) -> CertMaterial | None:
    """What the Secret should hold next, or None when ``material`` is fine as it is.

    Anything unreadable or inconsistent is replaced wholesale: a broken Secret must heal, not wedge."""
    if material is None:
        return fresh_material(identity, now, policy)
    try:
        ca = x509.load_pem_x509_certificate(material.ca_cert)
        leaf = x509.load_pem_x509_certificate(material.tls_cert)
        bundle = load_bundle(material.ca_bundle)
    except ValueError:
        return replace(fresh_material(identity, now, policy), reasons=("unreadable certificates replaced",))
    if not _key_matches(ca, material.ca_key) or now >= ca.not_valid_after_utc:
        return replace(fresh_material(identity, now, policy), reasons=("CA key mismatch or CA expired",))

    reasons: list[str] = []
    ca_cert, ca_key, staged_at = material.ca_cert, material.ca_key, material.ca_staged_at
    if needs_rotation(ca, now, policy.renew_fraction):
        ca_cert, ca_key = make_ca(now, policy.ca_validity)
        ca, staged_at = x509.load_pem_x509_certificate(ca_cert), now
        reasons.append("CA renewed (old CA kept in the bundle)")

    # The bundle: the current CA first, then every other CA that is still valid (expired ones drop out).
    kept = [c for c in bundle if c != ca and c.not_valid_after_utc > now]
    new_bundle = bundle_pem([ca, *kept])
    if new_bundle != material.ca_bundle:
        if not reasons:
            reasons.append("CA bundle refreshed")

    # The serving certificate.
    in_grace = staged_at is not None and now - staged_at < policy.grace
    broken = (
        now >= leaf.not_valid_after_utc
        or not covers(leaf, identity)
        or not _key_matches(leaf, material.tls_key)
        or not any(issued_by(leaf, c) for c in load_bundle(new_bundle))
    )
    tls_cert, tls_key = material.tls_cert, material.tls_key
    if broken:
        reason = "serving certificate invalid for its names, key or CA"
    elif not issued_by(leaf, ca) and not in_grace:
        reason = "serving certificate moved to the new CA"
    elif needs_rotation(leaf, now, policy.renew_fraction) and not in_grace:
        reason = "serving certificate renewed"
    else:
        reason = ""
    if reason:
        tls_cert, tls_key = make_serving_cert(ca_cert, ca_key, identity, now, policy.serving_validity)
        reasons.append(reason)
    if staged_at is not None and not in_grace and issued_by(x509.load_pem_x509_certificate(tls_cert), ca):
        staged_at = None  # rollover complete

    new = CertMaterial(ca_cert, ca_key, new_bundle, tls_cert, tls_key, staged_at, tuple(reasons))
    return new if new != material else None
