"""Render the Helm chart with the real ``helm template``, so the simulator installs exactly what production gets.

``fluxqueue sim up`` takes the CRD and the MutatingWebhookConfiguration from here instead of keeping a
second hand-written copy. The webhook stays a Service reference (as in production); the simulator maps the
Service to the controller's local address with ``APIServer.register_service``.

    manifests = await render_chart(sim_values())
    for obj in of_kind(manifests, "CustomResourceDefinition"): ...
    webhook = one_of_kind(manifests, "MutatingWebhookConfiguration")

helm comes from ``$FLUXQUEUE_HELM`` or ``hack/tools.sh`` (fetched once into a cache); the chart from
``$FLUXQUEUE_CHART`` or the repository's ``chart/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from fluxqueue.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "chart"
TOOLS_SCRIPT = REPO / "hack" / "tools.sh"
# The Kubernetes version templates are rendered for (Capabilities.KubeVersion); the emulator speaks 1.35.
KUBE_VERSION = "1.35.0"
DEFAULT_RELEASE = "fluxqueue"
DEFAULT_NAMESPACE = "fluxqueue-system"


def chart_dir() -> Path:
    return Path(os.environ.get("FLUXQUEUE_CHART") or CHART_DIR)


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        # helm template takes well under a second; the first tools.sh run downloads (minutes at worst).
        async with asyncio.timeout(600):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise ConfigError(f"{Path(argv[0]).name} failed: {err.decode().strip() or out.decode().strip()}")
    return out.decode()


async def helm_binary() -> str:
    """Path of the real helm: $FLUXQUEUE_HELM, else the one hack/tools.sh fetches (once) into its cache."""
    env = os.environ.get("FLUXQUEUE_HELM")
    if env:
        return env
    if TOOLS_SCRIPT.exists():
        directory = (await _run("bash", str(TOOLS_SCRIPT))).strip().splitlines()[-1]
        return str(Path(directory) / "helm")
    found = shutil.which("helm")
    if found:
        return found
    raise ConfigError("helm not found: set FLUXQUEUE_HELM or run from a fluxqueue checkout (hack/tools.sh)")


async def render_chart(
    values: dict | None = None,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    include_crds: bool = True,
    chart: str | os.PathLike | None = None,
    helm: str | None = None,
) -> list[dict]:
    """The chart's manifests for ``values`` (merged over values.yaml), as dicts, CRDs first."""
    helm = helm or await helm_binary()
    chart = str(chart or chart_dir())
    with tempfile.TemporaryDirectory(prefix="fluxqueue-chart-") as directory:
        values_file = Path(directory) / "values.json"  # JSON is YAML: no quoting surprises
        values_file.write_text(json.dumps(values or {}))
        argv = [
            helm,
            "template",
            release,
            chart,
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "-f",
            str(values_file),
        ]
        if include_crds:
            argv.append("--include-crds")
        out = await _run(*argv)
    docs = [d for d in yaml.safe_load_all(out) if d]
    # CRDs first, as helm installs them: objects of a new kind need their definition to exist.
    return sorted(docs, key=lambda d: d.get("kind") != "CustomResourceDefinition")


def render_chart_sync(
    values: dict | None = None, release: str = DEFAULT_RELEASE, namespace: str = DEFAULT_NAMESPACE, **kwargs
) -> list[dict]:
    """``render_chart`` for code without an event loop (tests, scripts)."""
    return asyncio.run(render_chart(values, release, namespace, **kwargs))


def sim_values(extra_ips: tuple[str, ...] = ("127.0.0.1",), **overrides) -> dict:
    """Values for the simulator: the certificate also names the loopback address the controller listens on."""
    values: dict = {"webhook": {"certificates": {"extraIPAddresses": list(extra_ips)}}}
    for key, value in overrides.items():
        values[key] = value
    return values


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m.get("kind") == kind]


def one_of_kind(manifests: list[dict], kind: str) -> dict:
    found = of_kind(manifests, kind)
    if len(found) != 1:
        raise ValueError(f"expected one {kind} in the rendered chart, found {len(found)}")
    return found[0]


def controller_container(manifests: list[dict]) -> dict:
    """The controller container of the rendered Deployment (its args and env are the production config)."""
    for deployment in of_kind(manifests, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "controller":
                return container
    raise ValueError("no controller container in the rendered chart")


# Resource keys of the kinds the chart renders, for creating them through a client with dict bodies.
_PLURALS = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "Service": "services",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
}
CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
}


def resource_key(obj: dict) -> tuple[str, str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version, _PLURALS[obj["kind"]]


async def install(client, manifests: list[dict], kinds: tuple[str, ...] | None = None) -> list[dict]:
    """Create ``manifests`` (or only those of ``kinds``) through ``client`` (the emulator's in-process client
    or ``fluxqueue.kube.client``), CRDs first. For ``fluxqueue sim up``: ``kinds=("CustomResourceDefinition",
    "MutatingWebhookConfiguration")`` registers exactly what production registers."""
    created = []
    for obj in manifests:
        if kinds is not None and obj["kind"] not in kinds:
            continue
        namespace = None if obj["kind"] in CLUSTER_SCOPED else obj["metadata"].get("namespace")
        created.append(await client.create(resource_key(obj), obj, namespace=namespace))
    return created
