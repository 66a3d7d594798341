"""A server-side TLS context whose certificate can be replaced while the server keeps running.

The server is created once with ``outer`` (the object aiohttp/asyncio hold on to). Its SNI callback, which
OpenSSL invokes for every handshake, also when the client sends no server name (clients that dial an IP
address), points each new connection at the current inner context. Loading a new certificate builds a
fresh inner context and swaps it in: existing connections keep theirs, new ones get the new certificate,
and nothing restarts.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile


def context_from_pem(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context with this certificate and key (blocking: reads through a private temp dir)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain only takes paths. The directory is private (0700) and removed at once; in the
    # container it is the writable /tmp emptyDir, since the root filesystem is read-only.
    with tempfile.TemporaryDirectory(prefix="fluxqueue-tls-") as directory:
        cert_path = os.path.join(directory, "tls.crt")
        key_path = os.path.join(directory, "tls.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


class ReloadableServerContext:
    def __init__(self) -> None:
        self.outer = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.outer.minimum_version = ssl.TLSVersion.TLSv1_2
        self.outer.sni_callback = self._select
        self._inner: ssl.SSLContext | None = None
        self.cert_pem: bytes | None = None
        self.reloads = 0

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def _select(self, ssl_object, server_name, _outer) -> int | None:
        if self._inner is None:
            # No certificate yet: fail this handshake cleanly rather than serve nothing.
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        ssl_object.context = self._inner
        return None

    def load(self, cert_pem: bytes, key_pem: bytes) -> None:
        self._inner = context_from_pem(cert_pem, key_pem)
        self.cert_pem = cert_pem
        self.reloads += 1

    async def aload(self, cert_pem: bytes, key_pem: bytes) -> None:
        """``load`` off the event loop (file writes and key parsing)."""
        inner = await asyncio.to_thread(context_from_pem, cert_pem, key_pem)
        self._inner = inner
        self.cert_pem = cert_pem
        self.reloads += 1
