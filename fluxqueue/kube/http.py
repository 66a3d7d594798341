"""Keep-alive HTTP/1.1 request/response calls to the API server, without a general-purpose client's cost.

The controller makes about six small API requests per pod it places. Through aiohttp each cost ~155 us of
client CPU (request and response objects, header multidicts, URL joining, tracing hooks); written and parsed
here directly it is ~70 us, measured against the emulator over TLS. Streams (watches) stay on aiohttp.

What is handled: ``Content-Length`` and ``chunked`` bodies, ``Connection: close``, a response without a
length (read to the end), a kept-alive connection the server closed while idle (retried once on a new one, as
browsers and aiohttp do, only when nothing of the response arrived), timeouts and cancellation (the
connection is dropped: its state is unknown).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 1 << 20  # status line and headers


class HTTPConnectionError(Exception):
    """The request did not get a response (refused, reset, timed out, malformed answer)."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes, head_only: bool) -> tuple[int, bytes, bool]:
        """Send one request, read its response: (status, body, whether the connection may be reused)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        try:
            version, code = lines[0].split(b" ", 2)[:2]
            status = int(code)
        except ValueError as exc:
            raise HTTPConnectionError(f"malformed status line {lines[0][:80]!r}") from exc
        length: int | None = None
        chunked = False
        keep = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                token = value.strip().lower()
                keep = token == b"keep-alive" or (keep and token != b"close")
        if head_only or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            parts = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            body = await self.reader.read()  # until the server closes
            keep = False
        return status, body, keep


class ConnectionPool:
    """Up to ``limit`` connections to ``server`` (``https://host:port[/base]``), reused between requests."""

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | None,
        *,
        headers: dict[str, str],
        limit: int = 64,
        timeout: float = 30.0,
        server_hostname: str | None = None,
    ):
        url = urlsplit(server)
        self.tls = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.tls else 80)
        self.base_path = url.path.rstrip("/")
        self.ssl_context = ssl_context if self.tls else None
        # The name the certificate must carry when it is not the host connected to (a Service's DNS name).
        self.server_hostname = server_hostname or self.host
        self.timeout = timeout
        self._host_header = url.netloc.rsplit("@", 1)[-1]
        self.set_headers(headers)
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    def set_headers(self, headers: dict[str, str]) -> None:
        """The headers every request carries (after Host), e.g. a new Authorization token."""
        self._fixed = (
            f"Host: {self._host_header}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        ).encode("latin-1")

    def set_ssl_context(self, ssl_context: ssl.SSLContext | None) -> None:
        """New connections use ``ssl_context`` (a renewed client certificate); idle ones are dropped."""
        self.ssl_context = ssl_context if self.tls else None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname=self.server_hostname if self.tls else None,
            limit=MAX_HEAD_BYTES,
        )
        return _Connection(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes]:
        """``path`` includes any query string. Raises HTTPConnectionError when no response came."""
        head = f"{method} {self.base_path}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1")
            message = head + body
        else:
            message = head + b"\r\n"
        async with self._slots:
            for attempt in (0, 1):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else None
                try:
                    async with asyncio.timeout(self.timeout):
                        if conn is None:
                            conn = await self._connect()
                        status, data, keep = await conn.exchange(message, method == "HEAD")
                except asyncio.IncompleteReadError as exc:
                    if conn is not None:
                        conn.close()
                    if reused and attempt == 0 and not exc.partial:
                        continue  # the server had closed this idle connection: once more on a new one
                    raise HTTPConnectionError(f"{method} {path}: connection closed mid-response") from exc
                except (OSError, ssl.SSLError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
                    if conn is not None:
                        conn.close()
                    if reused and attempt == 0 and isinstance(exc, ConnectionError):
                        continue
                    raise HTTPConnectionError(f"{method} {path}: {exc!r}") from exc
                except BaseException:
                    if conn is not None:
                        conn.close()  # cancelled mid-exchange: what is left on the wire is unknown
                    raise
                if keep and not self._closed:
                    self._idle.append(conn)
                else:
                    conn.close()
                return status, data
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
