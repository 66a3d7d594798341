"""Match policies as flux-sched defines them (resource/policies/dfu_match_policy_factory.cpp).

Every named policy is a custom policy string: ``first`` is ``policy=high node_centric=true
stop_on_1_matches=true``, ``hinodex`` is ``policy=high node_centric=true node_exclusive=true`` and so on; a
site may pass such a string itself (``{"matcher_policy": "policy=low node_centric=true"}``). ``policy`` picks
the id order (high or low ids first), ``node_centric`` adds each node's score factor to everything below it
(so a match packs into nodes), ``node_exclusive`` makes every node a job lands on its own, whole, and
``stop_on_1_matches`` visits children by availability and stops once enough is found instead of scoring them
all. ``locality`` and ``variation`` are flux-sched's other two match callbacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    name: str
    high: bool = True
    node_centric: bool = False
    node_exclusive: bool = False
    stop_on_1: bool = False
    locality: bool = False
    variation: bool = False


NAMED = {
    "first": "policy=high node_centric=true stop_on_1_matches=true",
    "firstnodex": "policy=high node_centric=true node_exclusive=true stop_on_1_matches=true",
    "high": "policy=high",
    "low": "policy=low",
    "lonode": "policy=low node_centric=true",
    "hinode": "policy=high node_centric=true",
    "lonodex": "policy=low node_centric=true node_exclusive=true",
    "hinodex": "policy=high node_centric=true node_exclusive=true",
    "locality": "",
    "variation": "",
}
_OPTIONS = ("policy", "node_centric", "stop_on_1_matches", "node_exclusive")

DEFAULT_POLICY = "first"


class PolicyError(ValueError):
    pass


def parse_policy(text: str) -> Policy:
    """A policy name or a custom policy string (parse_custom_match_policy), else PolicyError."""
    if text == "locality":
        return Policy("locality", high=True, locality=True)
    if text == "variation":
        return Policy("variation", high=True, variation=True)
    spec = NAMED.get(text, text)
    opts: dict[str, bool] = {}
    seen: set[str] = set()
    for term in spec.split(" "):
        key, _, value = term.partition("=")
        if key not in _OPTIONS:
            raise PolicyError(
                f"unknown match policy {text!r}: invalid policy option {key!r}; a policy is one of "
                f"{', '.join(NAMED)} or options {', '.join(o + '=' for o in _OPTIONS)} separated by spaces"
            )
        if key == "policy":
            if value not in ("high", "low"):
                raise PolicyError(f"match policy {text!r}: the policy key accepts only low or high")
            seen.add(value)
        elif value in ("true", "false"):
            opts.setdefault(key, value == "true")
        else:
            raise PolicyError(f"match policy {text!r}: option {key} requires true or false, got {value!r}")
    if not seen:
        # flux-sched builds no matcher without policy=high|low, and its context creation fails.
        raise PolicyError(f"match policy {text!r} names neither policy=high nor policy=low")
    return Policy(
        text,
        high="high" in seen,  # create_match_cb tests high before low
        node_centric=opts.get("node_centric", False),
        node_exclusive=opts.get("node_exclusive", False),
        stop_on_1=opts.get("stop_on_1_matches", False),
    )


POLICIES = {name: parse_policy(name) for name in NAMED}


def policy_from_options(text: str) -> Policy:
    """Accept a policy name or string, or reapi's JSON options (``{"matcher_policy": "lonode", ...}``)."""
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            opts = json.loads(text)
        except ValueError as exc:
            raise PolicyError(f"policy options are not valid JSON: {exc}") from None
        if not isinstance(opts, dict):
            raise PolicyError("policy options must be a JSON object")
        text = str(opts.get("matcher_policy") or "")
        fmt = opts.get("load_format", "jgf")
        if fmt != "jgf":
            raise PolicyError(f"load_format {fmt!r} is not supported (only jgf)")
    if not text:
        return POLICIES[DEFAULT_POLICY]
    return POLICIES.get(text) or parse_policy(text)
