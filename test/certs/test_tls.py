"""TLS as the API server sees it: a client trusting the CA bundle verifies the webhook's certificate, and a
renewed certificate is served without restarting the server."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl

import pytest

from fluxqueue.certs.authority import RotationPolicy, ServingIdentity, plan
from fluxqueue.certs.tls import ReloadableServerContext

SERVICE_NAME = "fluxqueue-webhook.fluxqueue-system.svc"
IDENTITY = ServingIdentity.for_service("fluxqueue-webhook", "fluxqueue-system", extra_ips=("127.0.0.1",))
NOW = dt.datetime.now(dt.UTC)


async def _serve(ctx: ssl.SSLContext):
    async def handle(reader, writer):
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


async def _peer_serial(port: int, cafile_pem: bytes, server_hostname: str | None) -> int:
    client = ssl.create_default_context(cadata=cafile_pem.decode())
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname=server_hostname
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert await reader.read() == b"hello"
    writer.close()
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


async def test_client_trusting_the_ca_verifies_the_service_name_and_the_ip():
    material = plan(None, IDENTITY, NOW, RotationPolicy())
    tls = ReloadableServerContext()
    await tls.aload(material.tls_cert, material.tls_key)
    server, port = await _serve(tls.outer)
    try:
        # The API server dials <svc>.<ns>.svc (sent as SNI, checked against the SANs) ...
        await _peer_serial(port, material.ca_bundle, SERVICE_NAME)
        # ... the simulator dials 127.0.0.1 (no SNI; the IP SAN is checked).
        await _peer_serial(port, material.ca_bundle, None)
        with pytest.raises(ssl.SSLCertVerificationError):
            await _peer_serial(port, material.ca_bundle, "not-our-service.example")
        stranger = plan(None, IDENTITY, NOW, RotationPolicy())
        with pytest.raises(ssl.SSLCertVerificationError):
            await _peer_serial(port, stranger.ca_bundle, SERVICE_NAME)
    finally:
        server.close()
        await server.wait_closed()


async def test_renewed_certificate_is_served_without_restarting_the_server():
    policy = RotationPolicy(
        ca_validity=dt.timedelta(days=30), serving_validity=dt.timedelta(days=30), grace=dt.timedelta(0)
    )
    first = plan(None, IDENTITY, NOW - dt.timedelta(days=21), policy)  # CA now has 9 of 30 days left
    tls = ReloadableServerContext()
    await tls.aload(first.tls_cert, first.tls_key)
    server, port = await _serve(tls.outer)
    try:
        first_serial = await _peer_serial(port, first.ca_bundle, SERVICE_NAME)

        rolled = plan(first, IDENTITY, NOW, policy)  # new CA, grace 0: leaf moves at once
        assert rolled is not None and rolled.ca_cert != first.ca_cert
        await tls.aload(rolled.tls_cert, rolled.tls_key)

        # Same listening socket, new certificate; the bundle (new + old CA) verifies it.
        second_serial = await _peer_serial(port, rolled.ca_bundle, SERVICE_NAME)
        assert second_serial != first_serial
        # A client still holding only the old CA fails: why the bundle is injected before the leaf moves.
        with pytest.raises(ssl.SSLCertVerificationError):
            await _peer_serial(port, first.ca_bundle, SERVICE_NAME)
        assert tls.reloads == 2
    finally:
        server.close()
        await server.wait_closed()


async def test_handshake_fails_cleanly_before_any_certificate_is_loaded():
    tls = ReloadableServerContext()
    server, port = await _serve(tls.outer)
    try:
        material = plan(None, IDENTITY, NOW, RotationPolicy())
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await _peer_serial(port, material.ca_bundle, SERVICE_NAME)
    finally:
        server.close()
        await server.wait_closed()
