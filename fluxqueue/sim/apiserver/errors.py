"""API errors carried as real Kubernetes ``Status`` objects.

Reasons and messages follow k8s.io/apimachinery/pkg/api/errors/errors.go (NewNotFound, NewAlreadyExists,
NewConflict, NewInvalid, NewGone, ...), so clients that match on ``reason`` or on the message text behave as
they do against a real API server. The body has the field order of the Go types (apimachinery
pkg/apis/meta/v1/types.go: Status is kind, apiVersion, metadata, status, message, reason, details, code;
StatusDetails is name, group, kind, uid, causes, retryAfterSeconds; every field omitempty), and, like every
body of the JSON serializer (runtime/serializer/json: json.Encoder.Encode), ends with a newline.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error the API answers with: an HTTP code, a machine reason and a human message."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @property
    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        if self.message:
            body["message"] = self.message
        if self.reason:
            body["reason"] = self.reason
        if self.details:
            d = self.details
            body["details"] = {k: d[k] for k in _DETAIL_ORDER if d.get(k)}
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"APIError({self.code}, {self.reason!r}, {self.message!r})"


_DETAIL_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def _details(group: str, plural: str, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        d["group"] = group
    return d


def not_found(group: str, plural: str, name: str) -> APIError:
    return APIError(
        404, "NotFound", f'{_qualified(group, plural)} "{name}" not found', _details(group, plural, name)
    )


def already_exists(group: str, plural: str, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{_qualified(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, why: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
        _details(group, plural, name),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str]]) -> APIError:
    """422 Invalid; ``causes`` are (field path, message) pairs as in field.ErrorList."""
    text = "; ".join(f"{f}: {m}" if f else m for f, m in causes)
    qual = f"{kind}.{group}" if group else kind
    details = {
        "name": name,
        "group": group,
        "kind": kind,
        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
    }
    if len(causes) == 1:
        message = f'{qual} "{name}" is invalid: {text}'
    else:
        message = f'{qual} "{name}" is invalid: [{", ".join(f"{f}: {m}" if f else m for f, m in causes)}]'
    return APIError(422, "Invalid", message, details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def forbidden(group: str, plural: str, name: str, why: str) -> APIError:
    return APIError(
        403,
        "Forbidden",
        f'{_qualified(group, plural)} "{name}" is forbidden: {why}',
        _details(group, plural, name),
    )


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")
