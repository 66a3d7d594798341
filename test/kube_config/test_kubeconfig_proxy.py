"""A cluster's ``proxy-url``: requests and watches go through an HTTP proxy (CONNECT to an https server,
absolute-form requests to a plain-http one), as kubectl sends them. The proxy is a small asyncio one written
here, in front of the API emulator; the kubeconfig names the server ``kubernetes``, a name only the proxy
knows (it stands for 127.0.0.1), so nothing reaches the emulator but through the proxy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from urllib.parse import urlsplit

import pytest
import yaml

from fluxqueue.errors import ConfigError
from fluxqueue.kube.client import PODS, APIError, KubeClient
from fluxqueue.sim.apiserver import APIServer

HOSTS = {"kubernetes": "127.0.0.1"}  # the proxy's own name resolution


class Proxy:
    """CONNECT tunnels and forwarded absolute-form requests, optionally behind Basic proxy credentials."""

    def __init__(self, credentials: str | None = None):
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        self.seen: list[str] = []  # the request line each client connection began with
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            self.seen.append(f"{method} {target}")
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            if self.expected and headers.get("Proxy-Authorization") != self.expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
            else:
                url = urlsplit(target)  # absolute-form: http://host:port/path
                host, port = url.hostname, url.port or 80
            up_reader, upstream = await asyncio.open_connection(HOSTS.get(host, host), int(port))
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.write(head)  # the server takes absolute-form request lines (RFC 9112 3.2.2)
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # stopped by __aexit__ (asyncio's server callback would log a cancelled task as an error)
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()
            self._tasks.discard(asyncio.current_task())

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.write_eof()


@pytest.fixture(params=[True, False], ids=["https", "http"])
async def api(request):
    server = APIServer(tls=request.param)
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.stop()


def proxied_kubeconfig(api, path, proxy_url: str):
    doc = api.kubeconfig()
    cluster = doc["clusters"][0]["cluster"]
    url = urlsplit(api.url)
    cluster["server"] = (
        f"{url.scheme}://kubernetes:{url.port}"  # a name in the certificate, known to the proxy
    )
    cluster["proxy-url"] = proxy_url
    path.write_text(yaml.safe_dump(doc))
    return path


def a_pod(name):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


async def test_requests_and_watches_go_through_the_proxy(api, tmp_path):
    tls = api.url.startswith("https")
    async with Proxy() as proxy:
        kubeconfig = proxied_kubeconfig(api, tmp_path / "kubeconfig", proxy.url)
        async with await KubeClient.from_kubeconfig(kubeconfig, qps=0, burst=1) as c:
            await c.create(PODS, a_pod("p"), namespace="default")
            assert (await c.get(PODS, "p", namespace="default"))["metadata"]["name"] == "p"
            events = c.watch(PODS, namespace="default", timeout_seconds=5)
            first = await anext(events)
            await events.aclose()
            assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "p"
    port = urlsplit(api.url).port
    if tls:
        # Tunnels: one for the kept-alive request connection, one for the watch (aiohttp's).
        assert proxy.seen == [f"CONNECT kubernetes:{port}"] * 2
    else:
        assert proxy.seen[0] == f"POST http://kubernetes:{port}/api/v1/namespaces/default/pods"
        assert proxy.seen[-1].startswith(
            f"GET http://kubernetes:{port}/api/v1/namespaces/default/pods?watch=1"
        )
        assert len(proxy.seen) == 2


async def test_proxy_credentials_in_the_url_are_sent_and_a_refusal_is_an_error(api, tmp_path):
    async with Proxy(credentials="fluxqueue:s3cret/+") as proxy:
        good = proxied_kubeconfig(
            api, tmp_path / "good", proxy.url.replace("//", "//fluxqueue:s3cret%2F%2B@")
        )
        async with await KubeClient.from_kubeconfig(good, qps=0, burst=1) as c:
            assert (await c.list(PODS, namespace="default"))["items"] == []
            events = c.watch(PODS, namespace="default", timeout_seconds=1)
            assert [e async for e in events if e["type"] != "BOOKMARK"] == []
        bad = proxied_kubeconfig(api, tmp_path / "bad", proxy.url)
        async with await KubeClient.from_kubeconfig(bad, qps=0, burst=1) as c:
            with pytest.raises(APIError) as err:
                await c.list(PODS, namespace="default")
            # Through an https tunnel the proxy's refusal is the connection's failure (503); forwarded, it is
            # the proxy's answer itself.
            assert err.value.code in (503, 407)
            if api.url.startswith("https"):
                assert "the proxy refused CONNECT" in err.value.message and "407" in err.value.message


@pytest.mark.parametrize(
    "proxy_url, message",
    [
        ("socks5://127.0.0.1:1080", "proxy-url: socks5:// proxies are not supported, only http:// proxies"),
        ("https://proxy.example:3128", "proxy-url: https:// proxies are not supported, only http:// proxies"),
        ("127.0.0.1:3128", "proxy-url: a proxy-url without a scheme is not supported, only http:// proxies"),
        ("http://127.0.0.1:port", "proxy-url is not a valid URL"),
    ],
)
async def test_an_unsupported_proxy_is_one_line(tmp_path, proxy_url, message):
    api = APIServer()
    api.url = "https://127.0.0.1:6443"  # never started: the kubeconfig is refused before any request
    api._certs = None
    path = proxied_kubeconfig(api, tmp_path / "kubeconfig", proxy_url)
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(path)
    assert str(err.value) == f"kubeconfig {path}: {message}"
