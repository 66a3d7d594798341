"""Admission webhooks: MutatingWebhookConfigurations and ValidatingWebhookConfigurations, called over HTTPS.

Follows k8s.io/apiserver/pkg/admission/plugin/webhook: rules (operations, apiGroups, apiVersions,
resources with subresources, scope), matchPolicy (Equivalent matches any version of the same group/resource),
namespaceSelector, objectSelector, an AdmissionReview v1 request, a JSONPatch response, timeoutSeconds
(default 10), failurePolicy (default Fail: a webhook that cannot be called fails the request with 500
InternalError "failed calling webhook ..."; Ignore: the request proceeds), sideEffects vs dryRun (a webhook
with side effects is never called for a dry run: the request is refused). Service references are verified
against the certificate name <service>.<namespace>.svc, as the real API server does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from fluxqueue.kube.http import ConnectionPool, HTTPConnectionError
from fluxqueue.log import get_logger

from .errors import APIError
from .patch import json_patch_shared
from .resources import MUTATING_WEBHOOKS, NAMESPACES, VALIDATING_WEBHOOKS, ResourceType
from .selection import labels_match, selector_from_label_selector_object

if TYPE_CHECKING:
    from .engine import Ctx
    from .server import APIServer

log = get_logger(__name__)

_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


def _rule_matches(
    rule: dict[str, Any], rt: ResourceType, op: str, subresource: str | None, exact: bool
) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and op not in ops:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and rt.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if exact and "*" not in versions and rt.version not in versions:
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and rt.namespaced) or (scope == "Namespaced" and not rt.namespaced):
        return False
    for r in rule.get("resources") or []:
        res, _, sub = r.partition("/")
        if res not in ("*", rt.plural):
            continue
        if not subresource and not sub:
            return True
        if subresource and sub in ("*", subresource):
            return True
    return False


class Admission:
    def __init__(self, server: APIServer):
        self.server = server
        self._ssl: dict[str, ssl.SSLContext] = {}
        # Keep-alive connections per webhook endpoint (the API server's own client reuses them the same way).
        self._pools: dict[tuple, ConnectionPool] = {}
        # (configurations, resource, operation, subresource) -> (their table's version, [(webhook, object
        # selector, namespace selector)] whose rules match): the rules and selectors of the configurations
        # are read again only when one of them changes, not at every request. Labels are matched per request.
        self._hooks: dict[tuple[Any, ...], tuple[int, list[tuple[dict[str, Any], Any, Any]]]] = {}

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()

    def _pool(self, url: str, host: str | None, hook: dict[str, Any]) -> tuple[ConnectionPool, str]:
        """The pool for the webhook's server and the path (with query) to post to."""
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        key = (
            parts.scheme,
            parts.netloc,
            host,
            (hook.get("clientConfig") or {}).get("caBundle") if tls else "",
        )
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = ConnectionPool(
                f"{parts.scheme}://{parts.netloc}",
                self._ssl_for(hook) if tls else None,
                headers={"Accept": "application/json"},
                limit=256,
                timeout=60.0,
                server_hostname=host,
            )
        return pool, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _configs(self, key: tuple[str, str, str]) -> list[dict[str, Any]]:
        t = self.server.engine.store.tables.get((key[0], key[2]))
        if t is None or not t.count:
            return []
        return sorted(t.by_ns.get("", {}).values(), key=lambda o: o["metadata"]["name"])

    def _matching(self, key, rt, op, obj, old, ns, subresource) -> list[dict[str, Any]]:
        if rt.group == "admissionregistration.k8s.io":
            return []  # webhooks are never called on webhook configurations (no lock-out)
        t = self.server.engine.store.tables.get((key[0], key[2]))
        if t is None or not t.count:
            return []
        ck = (key, rt.group, rt.version, rt.plural, rt.namespaced, op, subresource)
        hit = self._hooks.get(ck)
        if hit is None or hit[0] != t.last_rv:
            hooks = self._rule_matching(key, rt, op, subresource)
            if hooks is None:  # a selector that does not parse: the request fails as it always did
                return self._matching_uncached(key, rt, op, obj, old, ns, subresource)
            if len(self._hooks) > 4096:
                self._hooks.clear()
            hit = self._hooks[ck] = (t.last_rv, hooks)
        return [
            hook
            for hook, osel, nsel in hit[1]
            if (not osel and not nsel) or self._selected(osel, nsel, rt, obj, old, ns)
        ]

    def _rule_matching(self, key, rt, op, subresource) -> list[tuple[dict[str, Any], Any, Any]] | None:
        """The webhooks whose rules match, with their parsed selectors (None: a selector does not parse)."""
        out = []
        try:
            for cfg in self._configs(key):
                for hook in cfg.get("webhooks") or []:
                    exact = hook.get("matchPolicy", "Equivalent") == "Exact"
                    if not any(_rule_matches(r, rt, op, subresource, exact) for r in hook.get("rules") or []):
                        continue
                    osel = selector_from_label_selector_object(hook.get("objectSelector"))
                    nsel = selector_from_label_selector_object(hook.get("namespaceSelector"))
                    out.append((hook, osel, nsel))
        except Exception:
            return None
        return out

    def _matching_uncached(self, key, rt, op, obj, old, ns, subresource) -> list[dict[str, Any]]:
        out = []
        for cfg in self._configs(key):
            for hook in cfg.get("webhooks") or []:
                exact = hook.get("matchPolicy", "Equivalent") == "Exact"
                if not any(_rule_matches(r, rt, op, subresource, exact) for r in hook.get("rules") or []):
                    continue
                if not self._selectors_match(hook, rt, obj, old, ns):
                    continue
                out.append(hook)
        return out

    def _selectors_match(self, hook, rt, obj, old, ns) -> bool:
        osel = selector_from_label_selector_object(hook.get("objectSelector"))
        nsel = selector_from_label_selector_object(hook.get("namespaceSelector"))
        return self._selected(osel, nsel, rt, obj, old, ns)

    def _selected(self, osel, nsel, rt, obj, old, ns) -> bool:
        if osel:
            labels_new = ((obj or {}).get("metadata") or {}).get("labels")
            labels_old = ((old or {}).get("metadata") or {}).get("labels")
            if not (labels_match(osel, labels_new) if obj else False) and not (
                labels_match(osel, labels_old) if old else False
            ):
                return False
        if nsel:
            # the namespace's labels as they are now (never cached: a relabelled namespace counts at once)
            if rt.key == NAMESPACES:
                labels = ((obj or old or {}).get("metadata") or {}).get("labels")
            elif rt.namespaced:
                nsobj = self.server.engine.store.table("", "namespaces").get("", ns)
                labels = (nsobj or {}).get("metadata", {}).get("labels")
            else:
                return True
            if not labels_match(nsel, labels):
                return False
        return True

    async def mutate(
        self,
        rt: ResourceType,
        op: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        ns: str,
        name: str,
        subresource: str | None,
        ctx: Ctx,
        kind: tuple[str, str, str] | None = None,
    ) -> dict[str, Any]:
        hooks = self._matching(MUTATING_WEBHOOKS, rt, op, obj, old, ns, subresource)
        for hook in hooks:
            resp = await self._call(hook, rt, op, obj, old, ns, name, subresource, ctx, kind)
            if resp is None:
                continue
            patch = resp.get("patch")
            if patch:
                if resp.get("patchType", "JSONPatch") != "JSONPatch":
                    raise APIError(
                        500,
                        "InternalError",
                        f'Internal error occurred: failed calling webhook "{hook["name"]}": unsupported patch type {resp.get("patchType")!r}',
                    )
                try:
                    ops = json.loads(base64.b64decode(patch))
                    # obj is this request's own or shared with the stored object (a /status write): the
                    # patched copy shares what the patch leaves alone instead of copying all of it
                    obj = json_patch_shared(obj, ops)
                except APIError as e:
                    raise APIError(
                        500,
                        "InternalError",
                        f'Internal error occurred: failed calling webhook "{hook["name"]}": {e.message}',
                    ) from None
                except ValueError as e:
                    raise APIError(
                        500,
                        "InternalError",
                        f'Internal error occurred: failed calling webhook "{hook["name"]}": invalid patch: {e}',
                    ) from None
        return obj

    async def validate(self, rt, op, obj, old, ns, name, subresource, ctx, kind=None) -> None:
        hooks = self._matching(VALIDATING_WEBHOOKS, rt, op, obj, old, ns, subresource)
        if hooks:
            await asyncio.gather(
                *(self._call(h, rt, op, obj, old, ns, name, subresource, ctx, kind) for h in hooks)
            )

    def _target(self, hook: dict[str, Any]) -> tuple[str, str | None]:
        cc = hook.get("clientConfig") or {}
        if cc.get("url"):
            return cc["url"], None
        svc = cc.get("service") or {}
        port = int(svc.get("port") or 443)
        base = self.server.service_url(svc.get("namespace", ""), svc.get("name", ""), port)
        host = f"{svc.get('name')}.{svc.get('namespace')}.svc"
        if base is None:
            raise _CallError(
                f'Post "https://{host}:{port}{svc.get("path") or ""}": service "{svc.get("name")}" not found'
            )
        return base + (svc.get("path") or ""), host

    def _ssl_for(self, hook: dict[str, Any]) -> ssl.SSLContext:
        bundle = (hook.get("clientConfig") or {}).get("caBundle") or ""
        ctx = self._ssl.get(bundle)
        if ctx is None:
            if bundle:
                ctx = ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
            else:
                ctx = ssl.create_default_context()
            self._ssl[bundle] = ctx
        return ctx

    async def _call(self, hook, rt, op, obj, old, ns, name, subresource, ctx, kind) -> dict[str, Any] | None:
        hname = hook.get("name", "")
        side = hook.get("sideEffects")
        if ctx.dry_run and side not in ("None", "NoneOnDryRun"):
            # dispatcher.go: "admission webhook %q does not support dry run"
            raise APIError(400, "BadRequest", f'admission webhook "{hname}" does not support dry run')
        timeout = float(hook.get("timeoutSeconds") or 10)
        gkind = kind or (rt.group, rt.version, rt.kind)
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": gkind[0], "version": gkind[1], "kind": gkind[2]},
            "resource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "requestKind": {"group": gkind[0], "version": gkind[1], "kind": gkind[2]},
            "requestResource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "operation": op,
            "userInfo": ctx.user,
            "object": obj,
            "oldObject": old,
            "dryRun": ctx.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": _OPTIONS_KIND.get(op, "CreateOptions")},
        }
        if ctx.field_manager and op != "DELETE":
            request["options"]["fieldManager"] = ctx.field_manager
        if subresource:
            request["subResource"] = subresource
            request["requestSubResource"] = subresource
        if name:
            request["name"] = name
        if ns:
            request["namespace"] = ns
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        try:
            url, host = self._target(hook)
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timeout={int(timeout)}s"
            pool, path = self._pool(url, host, hook)
            async with asyncio.timeout(timeout):
                status, raw = await pool.request("POST", path, orjson.dumps(review), "application/json")
            if status != 200:
                text = raw.decode("utf-8", "replace")
                raise _CallError(f"expected response.uid and 200, got HTTP {status}: {text[:200]}")
            body = orjson.loads(raw)
            resp = body.get("response") or {}
            if resp.get("uid") != request["uid"]:
                raise _CallError(f'expected response.uid="{request["uid"]}", got "{resp.get("uid")}"')
        except TimeoutError:
            return self._failed(hook, f'failed to call webhook: Post "{url}": context deadline exceeded')
        except _CallError as e:
            return self._failed(hook, f"failed to call webhook: {e}")
        except (HTTPConnectionError, OSError, ValueError, ssl.SSLError) as e:
            return self._failed(hook, f'failed to call webhook: Post "{url}": {e}')
        if not resp.get("allowed"):
            status = resp.get("status") or {}
            code = status.get("code") or 400
            msg = status.get("message") or ""
            raise APIError(
                code,
                status.get("reason") or ("Forbidden" if code == 403 else "BadRequest"),
                f'admission webhook "{hook.get("name")}" denied the request'
                + (f": {msg}" if msg else " without explanation"),
            )
        return resp

    def _failed(self, hook: dict[str, Any], why: str) -> None:
        name = hook.get("name", "")
        if hook.get("failurePolicy", "Fail") == "Ignore":
            log.warning("admission webhook failed, ignored (failurePolicy Ignore)", webhook=name, error=why)
            return None
        raise APIError(
            500, "InternalError", f'Internal error occurred: failed calling webhook "{name}": {why}'
        )


class _CallError(Exception):
    pass
