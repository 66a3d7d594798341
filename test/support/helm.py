"""The chart rendered by the real ``helm template`` (the tests' view of what a cluster gets), and lookups in it.

manifests = await render_chart(values, helm=str(tools.helm))
webhook = one_of_kind(manifests, "MutatingWebhookConfiguration")
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "chart"
# Capabilities.KubeVersion the templates are rendered for; the emulator speaks 1.35.
KUBE_VERSION = "1.35.0"
DEFAULT_RELEASE = "fluxqueue"
DEFAULT_NAMESPACE = "fluxqueue-system"


async def render_chart(
    values: dict | None = None,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    helm: str,
    include_crds: bool = True,
    chart: str | os.PathLike | None = None,
) -> list[dict]:
    """The chart's manifests for ``values`` (merged over values.yaml), as dicts, CRDs first."""
    with tempfile.TemporaryDirectory(prefix="fluxqueue-chart-") as directory:
        values_file = Path(directory) / "values.json"  # JSON is YAML: no quoting surprises
        values_file.write_text(json.dumps(values or {}))
        argv = [helm, "template", release, str(chart or CHART_DIR), "--namespace", namespace]
        argv += ["--kube-version", KUBE_VERSION, "-f", str(values_file)]
        if include_crds:
            argv.append("--include-crds")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed: {err.decode().strip()}")
    docs = [d for d in yaml.safe_load_all(out.decode()) if d]
    # CRDs first, as helm installs them: objects of a new kind need their definition to exist.
    return sorted(docs, key=lambda d: d.get("kind") != "CustomResourceDefinition")


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m.get("kind") == kind]


def one_of_kind(manifests: list[dict], kind: str) -> dict:
    found = of_kind(manifests, kind)
    if len(found) != 1:
        raise ValueError(f"expected one {kind} in the rendered chart, found {len(found)}")
    return found[0]


def container(manifests: list[dict], name: str) -> dict:
    """A container of the rendered Deployments by name (init containers too: Fluxion may be a sidecar)."""
    for deployment in of_kind(manifests, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            if c["name"] == name:
                return c
    raise ValueError(f"no {name} container in the rendered chart")


def controller_container(manifests: list[dict]) -> dict:
    return container(manifests, "controller")
