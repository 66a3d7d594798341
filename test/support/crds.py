"""A small custom resource (example.com/v1 Widget) for emulator tests."""

from __future__ import annotations

from typing import Any

PRESERVE_UNKNOWN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def widget_crd(schema: dict[str, Any] | None = None, *, status_subresource: bool = False) -> dict[str, Any]:
    """The widgets.example.com CRD with ``schema`` as its openAPIV3Schema (anything goes by default)."""
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True}
    if status_subresource:
        version["subresources"] = {"status": {}}
    version["schema"] = {"openAPIV3Schema": schema or PRESERVE_UNKNOWN}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [version],
        },
    }
