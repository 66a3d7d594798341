"""Per-type behaviour hooks, as the registry "strategies" of k8s.io/kubernetes/pkg/registry/*/strategy.go.

The request pipeline (:mod:`.engine`) calls, in the real apiserver's order:
create: ``default`` -> mutating admission -> ``default`` again -> ``prepare_create`` -> name generation and
system fields -> ``validate_create`` -> validating admission -> storage;
update: ``default`` -> mutating admission -> ``prepare_update`` -> ``validate_update`` -> validating
admission -> storage. Status subresource writes use ``prepare_status_update``.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


class Strategy:
    # prepare_status_update changes nothing of an object but its status and metadata: a status write may
    # then share the rest with the stored object (Engine._write) instead of copying it
    status_update_keeps_rest = True
    # default() only fills in what is missing, never changes what is there, and a stored object lacks
    # nothing it would fill: the result of a patch may then share with the stored object what the patch
    # did not reach (Engine.patch), since defaulting it writes nothing there. Opt-in, per strategy.
    defaults_fill_only = False

    def default(self, obj: Obj) -> None:
        """Defaulting applied on decode (pkg/apis/*/v1/defaults.go)."""

    def prepare_create(self, obj: Obj) -> None:
        """PrepareForCreate: clear what clients may not set."""

    def after_system_fields(self, obj: Obj) -> None:
        """Hooks that need the uid / final name (e.g. the Job selector)."""

    def validate_create(self, obj: Obj) -> list[tuple[str, str]]:
        return []

    def prepare_update(self, new: Obj, old: Obj) -> None:
        """PrepareForUpdate of the main resource."""

    def validate_update(self, new: Obj, old: Obj) -> list[tuple[str, str]]:
        return []

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        """Status writes keep everything but status (and metadata labels/annotations stay as they were)."""

    def graceful_delete_seconds(self, obj: Obj, requested: int | None) -> int:
        """0 deletes at once; more marks the object terminating (pods only)."""
        return 0


DEFAULT = Strategy()
