"""The webhook's HTTP(S) server: aiohttp, ``POST /mutate``, ``GET /healthz``, ``GET /readyz``.

The decision (:func:`fluxqueue.webhook.mutate.decide`) is pure and takes tens of microseconds, so it runs
inline on the event loop. TLS belongs to whoever runs the app: the controller passes an ``ssl.SSLContext``
(from :mod:`fluxqueue.certs`, which swaps certificates without a restart) to :func:`serve`.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fluxqueue.log import get_logger
from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.webhook.mutate import ERROR, MUTATED, REJECTED, decide

try:  # orjson is optional but halves the JSON cost of a review
    import orjson

    def _loads(body: bytes) -> Any:
        return orjson.loads(body)

    def _dumps(doc: Any) -> bytes:
        return orjson.dumps(doc)
except ImportError:  # pragma: no cover

    def _loads(body: bytes) -> Any:
        return json.loads(body)

    def _dumps(doc: Any) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode()


log = get_logger(__name__)

CONFIG_KEY = web.AppKey("webhook_config", WebhookConfig)
METRICS_KEY = web.AppKey("webhook_metrics", object)
# Admission reviews carry one object; a Pod or Job is a few KiB. 3 MiB matches etcd's request limit.
MAX_BODY = 3 * 1024 * 1024


def _metrics() -> Any:
    """The process-wide metrics when the metrics module is present, else None (import kept optional)."""
    try:
        from fluxqueue.metrics import METRICS
    except Exception:  # pragma: no cover - metrics are optional for the webhook
        return None
    return METRICS


async def handle_mutate(request: web.Request) -> web.Response:
    started = time.perf_counter()
    config = request.app[CONFIG_KEY]
    try:
        review = _loads(await request.read())
    except ValueError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    if not isinstance(review, dict) or not isinstance(review.get("request"), dict):
        return web.json_response({"error": "not an AdmissionReview"}, status=400)
    response, decision = decide(review, config)
    elapsed = time.perf_counter() - started
    req = review["request"]
    if decision.outcome in (MUTATED, REJECTED, ERROR):
        meta = (req.get("object") or {}).get("metadata") or {}
        # Every admitted pod at info would drown the log at scale; rejections are what users ask about.
        emit = log.debug if decision.outcome == MUTATED else log.info
        emit(
            "admission",
            outcome=decision.outcome,
            reason=decision.reason,
            kind=(req.get("kind") or {}).get("kind", ""),
            operation=req.get("operation", ""),
            object=f"{req.get('namespace', '')}/{req.get('name') or meta.get('name') or meta.get('generateName', '')}",
            dry_run=bool(req.get("dryRun")),
            ms=round(elapsed * 1000, 3),
            **({"message": decision.message} if decision.message else {}),
        )
    metrics = request.app.get(METRICS_KEY)
    if metrics is not None:
        metrics.webhook_duration.labels(
            resource=decision.resource or "unknown", outcome=decision.outcome
        ).observe(elapsed)
    return web.Response(body=_dumps(response), content_type="application/json")


async def handle_health(_request: web.Request) -> web.Response:
    # Stateless: if the loop answers, the webhook can admit.
    return web.Response(text="ok\n")


def make_app(config: WebhookConfig | None = None, metrics: Any = "default") -> web.Application:
    """The webhook application. ``metrics``: a fluxqueue.metrics.Metrics, None, or the process default."""
    app = web.Application(client_max_size=MAX_BODY)
    app[CONFIG_KEY] = config or WebhookConfig()
    app[METRICS_KEY] = _metrics() if metrics == "default" else metrics
    app.router.add_post("/mutate", handle_mutate)
    app.router.add_get("/healthz", handle_health)
    app.router.add_get("/readyz", handle_health)
    return app


@dataclass
class RunningServer:
    runner: web.AppRunner
    site: web.TCPSite
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve(
    app: web.Application, host: str = "0.0.0.0", port: int = 9443, ssl_context: ssl.SSLContext | None = None
) -> RunningServer:
    """Start serving ``app``; ``port=0`` picks a free port (see ``.port``). Stop with ``await server.stop()``."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=512)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    return RunningServer(runner=runner, site=site, host=host, port=bound, tls=ssl_context is not None)
