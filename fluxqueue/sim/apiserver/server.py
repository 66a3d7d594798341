"""APIServer: the emulator as one object — storage, pipeline, admission, CRDs, HTTPS endpoint, kubeconfig."""

from __future__ import annotations

import base64
import random
import secrets
from pathlib import Path
from typing import Any

import yaml

from fluxqueue.log import get_logger

from .client import Client
from .engine import Engine
from .store import Store

log = get_logger(__name__)


class APIServer:
    """An in-process Kubernetes API server.

    ``APIServer()`` serves HTTPS with its own CA; ``APIServer(tls=False)`` plain HTTP. ``watch_history`` bounds
    the per-type event history (watches from older versions get 410 Gone); ``bookmark_interval`` is how often
    an idle watch that asked for bookmarks gets one.

    An HTTP watch without ``timeoutSeconds`` (or with 0) ends after a random time between
    ``min_request_timeout`` and twice that, simulated seconds (kube-apiserver's ``--min-request-timeout``,
    1800 by default: k8s.io/apiserver pkg/endpoints/request GetTimeoutForWatch, formerly in
    endpoints/handlers/get.go ListResource), divided by ``time_scale`` (which a SimCluster sets to its own), so
    every informer meets the re-watch it meets in a real cluster.
    """

    def __init__(
        self,
        tls: bool = True,
        watch_history: int = 10_000,
        bookmark_interval: float = 5.0,
        token: str | None = None,
        terminating_pod_timeout: float | None = None,
        min_request_timeout: float = 1800.0,
        time_scale: float = 1.0,
    ):
        self.min_request_timeout = min_request_timeout
        self.time_scale = time_scale
        self.engine = Engine(Store(history=watch_history))
        self.engine.bookmark_interval = bookmark_interval
        self.engine.terminating_pod_timeout = terminating_pod_timeout
        self.tls = tls
        self.trace = False  # log every HTTP request (debugging real clients)
        self.token = token or secrets.token_hex(16)
        self.engine.admin_token = self.token
        self.client = Client(self.engine)
        self.url = ""
        self.kubeconfig_path: Path | None = None  # set by write_kubeconfig
        self._services: dict[tuple[str, str, int], str] = {}
        self._runner: Any = None
        self._certs: Any = None
        from .admission import Admission
        from .crd import CRDManager

        self.engine.admission = Admission(self)
        self.engine.crds = CRDManager(self.engine)

    def watch_timeout(self) -> float:
        """Real seconds until a watch that set no timeout is ended by the server."""
        return self.min_request_timeout * (random.random() + 1.0) / self.time_scale

    @property
    def registry(self):
        return self.engine.registry

    @property
    def ca_pem(self) -> bytes | None:
        return self._certs.ca_pem if self._certs else None

    def register_service(self, namespace: str, name: str, port: int, url: str) -> None:
        """Webhook clientConfig.service {namespace, name, port} is reached at ``url`` (e.g. https://127.0.0.1:9443)."""
        self._services[(namespace, name, int(port))] = url.rstrip("/")

    def service_url(self, namespace: str, name: str, port: int) -> str | None:
        return self._services.get((namespace, name, int(port)))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiohttp import web

        from .http import make_server

        ssl_ctx = None
        if self.tls:
            from .tls import serving_bundle

            ips = ["127.0.0.1", "::1"]
            if host not in ("", "0.0.0.0", "::", "localhost") and host not in ips:
                ips.append(host)
            self._certs = serving_bundle(["localhost", "kubernetes", "kubernetes.default.svc"], ips)
            ssl_ctx = self._certs.server_context()
        self._runner = web.ServerRunner(make_server(self), handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_ctx, backlog=512)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        real_port = sock.getsockname()[1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = f"{'https' if self.tls else 'http'}://{shown}:{real_port}"
        log.info("apiserver listening", url=self.url)

    async def stop(self) -> None:
        await self.engine.close()
        await self.engine.admission.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def kubeconfig(self, context: str = "fluxqueue-sim") -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self.url}
        if self._certs is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._certs.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": "admin", "namespace": "default"}}
            ],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, context: str = "fluxqueue-sim") -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(self.kubeconfig(context), sort_keys=False))
        p.chmod(0o600)
        self.kubeconfig_path = p
        return p
