"""The webhook CA's decisions: names, lifetimes, when to renew, and CA rollover that never breaks trust."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509

from fluxqueue.certs.authority import (
    CertMaterial,
    RotationPolicy,
    ServingIdentity,
    issued_by,
    load_bundle,
    make_ca,
    make_serving_cert,
    needs_rotation,
    plan,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = RotationPolicy(
    ca_validity=dt.timedelta(days=300), serving_validity=dt.timedelta(days=30), grace=dt.timedelta(minutes=10)
)
IDENTITY = ServingIdentity.for_service("fluxqueue-webhook", "fluxqueue-system", extra_ips=("127.0.0.1",))


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def sans(c: x509.Certificate) -> tuple[set[str], set[str]]:
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {
        str(i) for i in san.get_values_for_type(x509.IPAddress)
    }


def test_serving_certificate_names_the_service_and_the_simulator_address():
    ca_pem, ca_key = make_ca(T0, POLICY.ca_validity)
    leaf_pem, _ = make_serving_cert(ca_pem, ca_key, IDENTITY, T0, POLICY.serving_validity)
    dns, ips = sans(cert(leaf_pem))
    assert {
        "fluxqueue-webhook.fluxqueue-system.svc",
        "fluxqueue-webhook.fluxqueue-system.svc.cluster.local",
    } <= dns
    assert ips == {"127.0.0.1"}
    assert issued_by(cert(leaf_pem), cert(ca_pem))
    eku = cert(leaf_pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert(ca_pem).extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert(leaf_pem).extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_ca_outlives_serving_certificate_and_serving_never_outlives_ca():
    ca_pem, ca_key = make_ca(T0, POLICY.ca_validity)
    leaf = cert(make_serving_cert(ca_pem, ca_key, IDENTITY, T0, POLICY.serving_validity)[0])
    ca = cert(ca_pem)
    assert (
        ca.not_valid_after_utc - ca.not_valid_before_utc
        > leaf.not_valid_after_utc - leaf.not_valid_before_utc
    )
    # Issued near the CA's end, the leaf is cut to the CA's expiry.
    late = ca.not_valid_after_utc - dt.timedelta(days=2)
    short = cert(make_serving_cert(ca_pem, ca_key, IDENTITY, late, POLICY.serving_validity)[0])
    assert short.not_valid_after_utc == ca.not_valid_after_utc
    # Back-dated a little for clock skew between replicas.
    assert leaf.not_valid_before_utc < T0


def test_rotation_is_due_once_less_than_a_third_of_validity_remains():
    ca_pem, _ = make_ca(T0, dt.timedelta(days=90))
    ca = cert(ca_pem)
    assert not needs_rotation(ca, T0)
    assert not needs_rotation(ca, T0 + dt.timedelta(days=59))
    assert needs_rotation(ca, T0 + dt.timedelta(days=61))
    assert needs_rotation(ca, T0 - dt.timedelta(days=1))  # not yet valid


def test_fresh_material_is_left_alone():
    material = plan(None, IDENTITY, T0, POLICY)
    assert material is not None
    assert load_bundle(material.ca_bundle) == [cert(material.ca_cert)]
    assert plan(material, IDENTITY, T0 + dt.timedelta(days=1), POLICY) is None


def test_serving_certificate_is_renewed_from_the_same_ca_when_due():
    material = plan(None, IDENTITY, T0, POLICY)
    later = T0 + dt.timedelta(days=21)  # 30-day leaf: 9 days left < 10
    renewed = plan(material, IDENTITY, later, POLICY)
    assert renewed is not None
    assert renewed.ca_cert == material.ca_cert and renewed.ca_bundle == material.ca_bundle
    assert renewed.tls_cert != material.tls_cert
    assert cert(renewed.tls_cert).not_valid_before_utc > T0 + dt.timedelta(days=20)
    assert "serving certificate renewed" in renewed.reasons


def test_ca_rollover_stages_the_new_ca_before_moving_the_serving_certificate():
    material = plan(None, IDENTITY, T0, POLICY)
    old_ca = cert(material.ca_cert)
    # Keep the leaf young so only the CA is due.
    due = T0 + dt.timedelta(days=201)
    material = CertMaterial(
        material.ca_cert,
        material.ca_key,
        material.ca_bundle,
        *make_serving_cert(material.ca_cert, material.ca_key, IDENTITY, due, POLICY.serving_validity),
    )

    staged = plan(material, IDENTITY, due, POLICY)
    assert staged is not None and staged.ca_staged_at == due
    new_ca = cert(staged.ca_cert)
    assert new_ca != old_ca
    assert load_bundle(staged.ca_bundle) == [new_ca, old_ca]  # clients trust both
    assert staged.tls_cert == material.tls_cert  # still served from the old CA during the grace period
    assert plan(staged, IDENTITY, due + dt.timedelta(minutes=5), POLICY) is None

    moved = plan(staged, IDENTITY, due + dt.timedelta(minutes=11), POLICY)
    assert moved is not None and moved.ca_staged_at is None
    assert issued_by(cert(moved.tls_cert), new_ca)
    assert load_bundle(moved.ca_bundle) == [new_ca, old_ca]  # old CA kept until it expires
    assert plan(moved, IDENTITY, due + dt.timedelta(minutes=12), POLICY) is None

    after_old_expiry = old_ca.not_valid_after_utc + dt.timedelta(days=1)
    pruned = plan(moved, IDENTITY, after_old_expiry, POLICY)
    assert pruned is not None
    assert load_bundle(pruned.ca_bundle)[0] == new_ca and old_ca not in load_bundle(pruned.ca_bundle)


def test_a_renamed_service_gets_a_certificate_for_its_new_name():
    material = plan(None, IDENTITY, T0, POLICY)
    other = ServingIdentity.for_service("other", "elsewhere", extra_ips=("10.0.0.7",))
    reissued = plan(material, other, T0, POLICY)
    assert reissued is not None and reissued.ca_cert == material.ca_cert
    dns, ips = sans(cert(reissued.tls_cert))
    assert "other.elsewhere.svc" in dns and ips == {str(ipaddress.ip_address("10.0.0.7"))}


def test_unreadable_or_mismatched_material_heals_instead_of_wedging():
    material = plan(None, IDENTITY, T0, POLICY)
    garbage = CertMaterial(b"junk", b"junk", b"", b"junk", b"junk")
    healed = plan(garbage, IDENTITY, T0, POLICY)
    assert healed is not None and issued_by(cert(healed.tls_cert), cert(healed.ca_cert))

    other = plan(None, IDENTITY, T0, POLICY)
    swapped_key = CertMaterial(
        material.ca_cert, material.ca_key, material.ca_bundle, material.tls_cert, other.tls_key
    )
    fixed = plan(swapped_key, IDENTITY, T0, POLICY)
    assert fixed is not None and fixed.tls_cert != material.tls_cert
    assert fixed.ca_cert == material.ca_cert
