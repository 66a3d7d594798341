"""A thin async Kubernetes API client (requests on fluxqueue.kube.http, watches on aiohttp), working with plain dicts (kopf's ``_cogs/clients`` style).

Resources are named by ``(group, version, plural)`` keys, e.g. ``PODS == ("", "v1", "pods")``, and the method
signatures match the emulator's in-process client, so code written against one runs against the other.

Configuration and credentials (a kubeconfig, exec credential plugins, the in-cluster service account) come
from ``fluxqueue.kube.config``, renewed between requests when due and when the API server answers 401.
Every request passes a client-side token bucket (``qps``/``burst``), set explicitly because client-go's
defaults (5/10) throttle a scheduler long before the API server would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import aiohttp
import orjson

from fluxqueue.kube import names
from fluxqueue.kube.config import KubeConfig
from fluxqueue.kube.http import MAX_HEAD_BYTES, ConnectionPool, HTTPConnectionError, _Connection
from fluxqueue.log import get_logger

log = get_logger(__name__)

Key = tuple[str, str, str]

NAMESPACES: Key = ("", "v1", "namespaces")
NODES: Key = ("", "v1", "nodes")
PODS: Key = ("", "v1", "pods")
EVENTS: Key = ("", "v1", "events")
LEASES: Key = ("coordination.k8s.io", "v1", "leases")
JOBS: Key = ("batch", "v1", "jobs")
PRIORITYCLASSES: Key = ("scheduling.k8s.io", "v1", "priorityclasses")
CRDS: Key = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
MUTATING_WEBHOOKS: Key = ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
SECRETS: Key = ("", "v1", "secrets")
FLUXJOBS: Key = (names.CRD_GROUP, names.CRD_VERSION, names.CRD_PLURAL)

# Plurals of the cluster-scoped types we touch (everything else is namespaced).
CLUSTER_SCOPED = frozenset(
    {
        "namespaces",
        "nodes",
        "priorityclasses",
        "customresourcedefinitions",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "clusterroles",
        "clusterrolebindings",
        "persistentvolumes",
        "storageclasses",
    }
)

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}


class APIError(Exception):
    """A non-2xx answer from the API server, with the Status it returned."""

    def __init__(self, code: int, reason: str, message: str, status: dict | None = None):
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status or {}


WATCH_READ_BUFFER = 2**24  # bytes buffered per watch stream before aiohttp pauses reading it


class TokenBucket:
    """Client-side rate limit: ``qps`` tokens per second, at most ``burst`` saved (client-go's flowcontrol)."""

    def __init__(self, qps: float, burst: int):
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Take a token if one is there now (never waits)."""
        if self.qps <= 0:
            return True
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def acquire(self) -> None:
        if self.qps <= 0:  # unlimited
            return
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.qps
                await asyncio.sleep(wait)
                self._stamp = time.monotonic()
                self._tokens = 1
            self._tokens -= 1


def binding_body(name: str, node: str, namespace: str | None = None) -> dict:
    """A core/v1 Binding of pod ``name`` to ``node``, to POST to the pod's ``binding`` subresource."""
    meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": meta,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def resource_path(
    key: Key, namespace: str | None = None, name: str | None = None, subresource: str | None = None
) -> str:
    group, version, plural = key
    path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace and plural not in CLUSTER_SCOPED:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


class ProxiedPool(ConnectionPool):
    """The pool with its connections through an HTTP proxy (a kubeconfig cluster's ``proxy-url``), as
    client-go's transport goes through one: a CONNECT tunnel to an https server (TLS inside it, end to end),
    absolute-form request lines to a plain-http one. The proxy's user and password, if the URL has them,
    are sent as ``Proxy-Authorization: Basic``."""

    def __init__(self, server: str, ssl_context: Any, *, proxy: str, headers: dict[str, str], **kwargs: Any):
        url = urlsplit(proxy)
        self.proxy_host = url.hostname or "localhost"
        self.proxy_port = url.port or 80
        self._proxy_authorization: str | None = None
        if url.username is not None:
            pair = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            self._proxy_authorization = "Basic " + base64.b64encode(pair).decode()
        super().__init__(server, ssl_context, headers=headers, **kwargs)
        self._target = f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"
        if not self.tls:
            # The request line names the server: "GET http://host:port/api/v1/pods HTTP/1.1".
            self.base_path = f"http://{self._target}{self.base_path}"

    def set_headers(self, headers: dict[str, str]) -> None:
        if self._proxy_authorization and not self.tls:  # seen by the proxy on every forwarded request
            headers = {**headers, "Proxy-Authorization": self._proxy_authorization}
        super().set_headers(headers)

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.proxy_host, self.proxy_port, limit=MAX_HEAD_BYTES)
        if not self.tls:
            return _Connection(reader, writer)
        try:
            auth = (
                f"Proxy-Authorization: {self._proxy_authorization}\r\n" if self._proxy_authorization else ""
            )
            writer.write(f"CONNECT {self._target} HTTP/1.1\r\nHost: {self._target}\r\n{auth}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[1].startswith("2"):
                raise HTTPConnectionError(f"the proxy refused CONNECT {self._target}: {status_line[:120]!r}")
            await writer.start_tls(self.ssl_context, server_hostname=self.server_hostname)
        except BaseException:
            writer.close()
            raise
        return _Connection(reader, writer)


class KubeClient:
    """``client = await KubeClient.from_kubeconfig(path, qps=..., burst=...)``; ``async with client:`` or
    ``await client.close()``."""

    def __init__(self, config: KubeConfig, *, qps: float = 50, burst: int = 100, timeout: float = 30):
        self.config = config
        self.limiter = TokenBucket(qps, burst)
        self._timeout = timeout
        self._ssl = config.access.ssl_context()
        self._session: aiohttp.ClientSession | None = None  # watches (streams)
        self._pool: ConnectionPool | None = None  # every other request

    @classmethod
    async def from_kubeconfig(
        cls, path: str | os.PathLike | None, context: str | None = None, **kwargs: Any
    ) -> KubeClient:
        """``path`` None: the in-cluster service account. Raises ConfigError when it cannot be used."""
        return cls(await KubeConfig.load(path, context), **kwargs)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "fluxqueue"}
        if self.config.access.authorization:
            headers["Authorization"] = self.config.access.authorization
        return headers

    async def _renew(self, refused: str | None = None) -> bool:
        """Load the credentials again when due (or ``refused`` by the server); True when they changed."""
        before = self.config.access
        if not await self.config.renew(refused):
            return False
        access = self.config.access
        if not access.same_tls(before):
            self._ssl = access.ssl_context()
            if self._pool is not None:
                self._pool.set_ssl_context(self._ssl)
        if self._pool is not None:
            self._pool.set_headers(self._headers())
        return True

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            kwargs: dict[str, Any] = {
                "headers": self._headers(),
                "limit": 64,
                "timeout": self._timeout,
                "server_hostname": self.config.access.tls_server_name,
            }
            if self.config.access.proxy:
                self._pool = ProxiedPool(
                    self.config.server, self._ssl, proxy=self.config.access.proxy, **kwargs
                )
            else:
                self._pool = ConnectionPool(self.config.server, self._ssl, **kwargs)
        return self._pool

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        # Watches only (each passes its headers and TLS context, with the current credentials, and its timeout).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.config.server,
                connector=aiohttp.TCPConnector(limit=64),
                # The API server sets no cookies we need; the default jar filters cookies on every request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict:
        await self.limiter.acquire()
        if self.config.due():
            await self._renew()
        # orjson: decoding watch events and responses was a fifth of the controller's CPU with the stdlib json.
        data = None if body is None else orjson.dumps(body)
        if params:
            query = urlencode({k: str(v) for k, v in params.items() if v is not None})
            if query:
                path = f"{path}?{query}"
        for attempt in (0, 1):
            sent_with = self.config.access.authorization
            try:
                status, raw = await self.pool.request(
                    method, path, data, content_type if data is not None else None
                )
            except HTTPConnectionError as exc:
                raise APIError(503, "ServiceUnavailable", str(exc)) from exc
            # Refused credentials (expired early, revoked, rotated): renewed, the request is sent once more
            # (a 401 is answered before anything is done).
            if status != 401 or attempt or not await self._renew(refused=sent_with):
                break
        if status >= 400:
            raise _api_error(status, raw.decode("utf-8", "replace"))
        return orjson.loads(raw) if raw else {}

    # ---- verbs (same signatures as the emulator's in-process client) -----------------------------------

    async def get(
        self, key: Key, name: str, namespace: str | None = None, subresource: str | None = None
    ) -> dict:
        return await self.request("GET", resource_path(key, namespace, name, subresource))

    async def list(
        self,
        key: Key,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> dict:
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_,
        }
        return await self.request("GET", resource_path(key, namespace), params=params)

    async def create(
        self,
        key: Key,
        body: dict,
        namespace: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
        dry_run: bool = False,
    ) -> dict:
        if subresource and not name:
            name = body.get("metadata", {}).get("name")
        path = resource_path(key, namespace, name if subresource else None, subresource)
        return await self.request("POST", path, body=body, params={"dryRun": "All" if dry_run else None})

    async def update(
        self, key: Key, body: dict, namespace: str | None = None, subresource: str | None = None
    ) -> dict:
        name = body["metadata"]["name"]
        return await self.request("PUT", resource_path(key, namespace, name, subresource), body=body)

    async def patch(
        self,
        key: Key,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict:
        return await self.request(
            "PATCH",
            resource_path(key, namespace, name, subresource),
            body=patch,
            content_type=PATCH_CONTENT_TYPES[patch_type],
        )

    async def delete(
        self,
        key: Key,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        preconditions: dict | None = None,
    ) -> dict:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", resource_path(key, namespace, name), body=body)

    async def watch(
        self,
        key: Key,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict]:
        """One watch stream: yields ADDED/MODIFIED/DELETED/BOOKMARK events; ends when the server closes it.

        Raises APIError(410) when ``resource_version`` is too old (the caller relists; see ``kube.watch``).
        """
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
        }
        params = {k: str(v) for k, v in params.items() if v is not None}
        await self.limiter.acquire()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=timeout_seconds + 30
        )
        if self.config.due():
            await self._renew()
        try:
            for attempt in (0, 1):
                headers = self._headers()  # the current credentials (they may have been renewed)
                # A large read buffer: when the reader pauses a TLS stream at aiohttp's default high-water
                # mark (128 KiB) and resumes it, data already received can sit undelivered until the server
                # writes again (seen as multi-second stalls that the next 5 s bookmark ended, while the
                # controller was busy releasing a burst). A watch is read as fast as it comes anyway.
                async with self.session.get(
                    resource_path(key, namespace),
                    params=params,
                    timeout=timeout,
                    read_bufsize=WATCH_READ_BUFFER,
                    headers=headers,
                    ssl=self._ssl if self._ssl is not None else True,
                    server_hostname=self.config.access.tls_server_name,
                    # aiohttp tunnels with CONNECT to an https server and takes the URL's user and password.
                    proxy=self.config.access.proxy,
                ) as resp:
                    if (
                        resp.status == 401
                        and not attempt
                        and await self._renew(refused=headers.get("Authorization"))
                    ):
                        continue  # refused credentials, renewed: once more (nothing was streamed yet)
                    if resp.status >= 400:
                        raise _api_error(resp.status, await resp.text())
                    buffer = b""
                    async for chunk in resp.content.iter_any():
                        buffer += chunk
                        if b"\n" not in chunk:
                            continue
                        lines = buffer.split(b"\n")
                        buffer = lines.pop()  # an incomplete last line waits for the next chunk
                        for line in lines:
                            if not line.strip():
                                continue
                            event = orjson.loads(line)
                            if event.get("type") == "ERROR":
                                status = event.get("object") or {}
                                raise APIError(
                                    int(status.get("code") or 500),
                                    status.get("reason") or "Error",
                                    status.get("message") or "",
                                    status,
                                )
                            yield event
                return
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise APIError(503, "ServiceUnavailable", f"watch {key[2]}: {exc!r}") from exc


def _api_error(code: int, text: str) -> APIError:
    try:
        status = json.loads(text)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    return APIError(code, status.get("reason") or "Unknown", status.get("message") or text[:500], status)


def object_key(obj: dict) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else meta.get("name", "")
