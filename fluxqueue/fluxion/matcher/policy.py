"""Match policies as orderings (flux-sched dfu_match_policy_factory.cpp, prior-art §7.3).

flux-sched scores candidates and keeps the best k; we order candidates by the same preference and take them
greedily, which picks the same vertices when scores follow vertex ids. ``first`` (high ids first, stop at the
first match) is therefore ``high`` with an early stop, and ``lonode``/``hinode`` are ``low``/``high`` applied at
the node level, which is also the order we use at every level. ``*nodex`` make every node request exclusive.
``locality`` packs: among children that can hold the whole remaining request it takes the smallest (best fit),
otherwise the one that holds the most, so a gang lands in the fewest racks and nodes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    name: str
    high: bool = True
    node_exclusive: bool = False
    locality: bool = False


POLICIES = {
    "first": Policy("first", high=True),
    "firstnodex": Policy("firstnodex", high=True, node_exclusive=True),
    "high": Policy("high", high=True),
    "low": Policy("low", high=False),
    "hinode": Policy("hinode", high=True),
    "lonode": Policy("lonode", high=False),
    "hinodex": Policy("hinodex", high=True, node_exclusive=True),
    "lonodex": Policy("lonodex", high=False, node_exclusive=True),
    "locality": Policy("locality", high=True, locality=True),
}

DEFAULT_POLICY = "first"


class PolicyError(ValueError):
    pass


def policy_from_options(text: str) -> Policy:
    """Accept a policy name, or reapi's JSON options (``{"matcher_policy": "lonode", "load_format": "jgf"}``)."""
    text = (text or "").strip()
    if text.startswith("{"):
        import json

        try:
            opts = json.loads(text)
        except ValueError as exc:
            raise PolicyError(f"policy options are not valid JSON: {exc}") from None
        text = str(opts.get("matcher_policy") or "")
        fmt = opts.get("load_format", "jgf")
        if fmt != "jgf":
            raise PolicyError(f"load_format {fmt!r} is not supported (only jgf)")
    if not text:
        return POLICIES[DEFAULT_POLICY]
    try:
        return POLICIES[text]
    except KeyError:
        raise PolicyError(f"unknown match policy {text!r}; known: {', '.join(POLICIES)}") from None
