"""The controller's keep-alive HTTP/1.1 requests against a raw server: framings, reuse, stale connections."""

from __future__ import annotations

import asyncio

import pytest

from fluxqueue.kube.http import ConnectionPool, HTTPConnectionError


async def serve(handler):
    """A raw HTTP server: ``handler(request_head, body, n)`` returns bytes to write (None: close)."""
    accepted = []

    async def on_client(reader, writer):
        accepted.append(writer)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                n += 1
                out = handler(head, body, n)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, accepted


def response(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


async def test_bodies_by_length_and_chunked_reuse_one_connection_and_send_our_headers():
    seen = []

    def handler(head, body, n):
        seen.append((head, body))
        if n == 1:
            return response(b'{"a": 1}')
        return (
            b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"b\r\n5\r\n": 2}\r\n0\r\n\r\n'
        )

    server, port, accepted = await serve(handler)
    pool = ConnectionPool(f"http://127.0.0.1:{port}/base", None, headers={"Authorization": "Bearer t"})
    try:
        assert await pool.request("GET", "/x?y=1") == (200, b'{"a": 1}')
        assert await pool.request("POST", "/z", b"{}", "application/json") == (201, b'{"b": 2}')
        assert len(accepted) == 1  # kept alive
        first, second = seen
        assert first[0].startswith(b"GET /base/x?y=1 HTTP/1.1\r\n") and b"Authorization: Bearer t" in first[0]
        assert b"Content-Type: application/json" in second[0] and second[1] == b"{}"
    finally:
        await pool.close()
        server.close()


async def test_connection_close_and_unframed_bodies_are_not_reused():
    def handler(head, body, n):
        if n == 1:
            return response(b"one", "Connection: close")
        return None

    server, port, accepted = await serve(handler)
    pool = ConnectionPool(f"http://127.0.0.1:{port}", None, headers={})
    try:
        assert await pool.request("GET", "/a") == (200, b"one")
        assert await pool.request("GET", "/b") == (200, b"one")  # a fresh connection, served as its first
        assert len(accepted) == 2
    finally:
        await pool.close()
        server.close()


async def test_an_idle_connection_the_server_closed_is_retried_once_on_a_new_one():
    def handler(head, body, n):
        return response(b"ok", "Connection: keep-alive")

    server, port, accepted = await serve(handler)
    pool = ConnectionPool(f"http://127.0.0.1:{port}", None, headers={})
    try:
        assert await pool.request("GET", "/a") == (200, b"ok")
        accepted[0].close()  # the server drops the idle connection
        await asyncio.sleep(0.05)
        assert await pool.request("GET", "/b") == (200, b"ok")
        assert len(accepted) == 2
    finally:
        await pool.close()
        server.close()


async def test_no_answer_is_a_connection_error_not_a_hang():
    server, port, _ = await serve(lambda head, body, n: b"")  # reads the request, never answers
    pool = ConnectionPool(f"http://127.0.0.1:{port}", None, headers={}, timeout=0.3)
    try:
        with pytest.raises(HTTPConnectionError):
            await pool.request("GET", "/a")
    finally:
        await pool.close()
        server.close()
    refused = ConnectionPool("http://127.0.0.1:9", None, headers={})
    with pytest.raises(HTTPConnectionError):
        await refused.request("GET", "/a")
