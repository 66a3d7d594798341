"""Service account tokens: ``serviceaccounts/{name}/token`` (TokenRequest) and TokenReview.

A TokenRequest answers a JWT with the claims kube-apiserver's token issuer writes (pkg/serviceaccount
claims.go: iss, sub ``system:serviceaccount:{ns}:{name}``, aud, exp, iat, nbf, jti and the ``kubernetes.io``
claim naming the namespace and service account), valid ``spec.expirationSeconds`` (default 3600, at least 600:
pkg/apis/authentication/validation). It is signed with a key of the emulator's own (HS256: no client checks
the signature, and the emulator recognises its tokens by their exact text). The emulator accepts such a token
as a bearer token, as it accepts its admin token, until it expires; a TokenReview says who it names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

from . import errors as E

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION_S = 3600
MIN_EXPIRATION_S = 600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Tokens:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        # token -> (expiry, user info)
        self._issued: dict[str, tuple[float, dict[str, Any]]] = {}

    def request(self, sa: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The TokenRequest answer for service account ``sa`` and the request ``body``."""
        md = sa["metadata"]
        ns, name = md["namespace"], md["name"]
        spec = dict(body.get("spec") or {})
        exp_s = spec.get("expirationSeconds")
        exp_s = DEFAULT_EXPIRATION_S if exp_s is None else exp_s
        if not isinstance(exp_s, int) or exp_s < MIN_EXPIRATION_S:
            raise E.invalid(
                "authentication.k8s.io",
                "TokenRequest",
                name,
                [
                    (
                        "spec.expirationSeconds",
                        f"Invalid value: {exp_s}: may not specify a duration less than 10 minutes",
                    )
                ],
            )
        if exp_s > 2**32:
            raise E.invalid(
                "authentication.k8s.io",
                "TokenRequest",
                name,
                [
                    (
                        "spec.expirationSeconds",
                        f"Invalid value: {exp_s}: may not specify a duration larger than 2^32 seconds",
                    )
                ],
            )
        audiences = list(spec.get("audiences") or [ISSUER])
        now = time.time()
        exp = now + exp_s
        claims = {
            "aud": audiences,
            "exp": int(exp),
            "iat": int(now),
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": md.get("uid", "")}},
            "nbf": int(now),
            "sub": f"system:serviceaccount:{ns}:{name}",
        }
        bound = spec.get("boundObjectRef")
        if isinstance(bound, dict) and bound.get("name"):
            claims["kubernetes.io"][str(bound.get("kind", "")).lower() or "object"] = {
                "name": bound["name"],
                "uid": bound.get("uid", ""),
            }
        head = _b64(json.dumps({"alg": "HS256", "kid": "fluxqueue-sim"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, f"{head}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{head}.{payload}.{sig}"
        user = {
            "username": claims["sub"],
            "uid": md.get("uid", ""),
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
        }
        self._issued[token] = (exp, {"user": user, "audiences": audiences})
        spec["audiences"] = audiences
        spec["expirationSeconds"] = exp_s
        spec.setdefault("boundObjectRef", None)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": _rfc3339(now)},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(exp)},
        }

    def valid(self, token: str) -> bool:
        entry = self._issued.get(token)
        if entry is None:
            return False
        if entry[0] < time.time():
            del self._issued[token]
            return False
        return True

    def review(self, token: str, admin_token: str | None, admin: dict[str, Any]) -> dict[str, Any]:
        """TokenReview status for ``token``."""
        if admin_token is not None and token == admin_token:
            return {"authenticated": True, "user": dict(admin), "audiences": [ISSUER]}
        if self.valid(token):
            info = self._issued[token][1]
            return {"authenticated": True, "user": dict(info["user"]), "audiences": list(info["audiences"])}
        return {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
