"""What the simulator takes from the Helm chart, rendered in Python: no helm, no chart directory at start-up.

``fluxqueue sim`` registers the chart's FluxJob CRD and MutatingWebhookConfiguration and runs the controller
and Fluxion with the chart's command lines, so the simulation runs what production installs; an installed
fluxqueue carries all of it in this module:

- the CRD has one definition, ``fluxqueue.controller.crd``; ``hack/gen-crd.py`` writes ``chart/crds/`` from it;
- the webhook configuration and the two containers' args and env are built here from the chart's values as
  ``chart/templates/`` renders them. ``test/chart/test_chartrender.py`` runs the real ``helm template`` over
  a set of values and fails on any difference, so a change made on one side only never ships.

    values = sim_values()
    objects = registered_objects(values)  # the CRD, then the MutatingWebhookConfiguration
    args = controller_container(values)["args"]

Only the values these objects read are known here (``DEFAULTS``, checked against ``chart/values.yaml``).
"""

from __future__ import annotations

import copy
import decimal
from typing import Any

import yaml

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.webhook.config import KUBERNETES_NAMESPACES

CHART_NAME = "fluxqueue"
CHART_VERSION = "0.1.0"  # chart/Chart.yaml version
APP_VERSION = "0.1.0"  # chart/Chart.yaml appVersion
DEFAULT_RELEASE = "fluxqueue"
DEFAULT_NAMESPACE = "fluxqueue-system"

# The chart's defaults (chart/values.yaml) for every value read below; the test compares them.
DEFAULTS: dict[str, Any] = {
    "nameOverride": "",
    "fullnameOverride": "",
    "logLevel": "info",
    "logFormat": "json",
    "controller": {
        "strategy": "easy",
        "qps": 300,
        "burst": 500,
        "groupTimeoutSeconds": 300,
        "defaultDuration": 3600,
        "leaderElection": {
            "enabled": True,
            "leaseName": "",
            "leaseDurationSeconds": 15,
            "renewDeadlineSeconds": 10,
            "retryPeriodSeconds": 2,
        },
        "ports": {"webhook": 9443, "metrics": 8080},
        "extraArgs": [],
        "extraEnv": [],
    },
    "fluxion": {"mode": "sidecar", "port": 4242, "policy": "first", "extraArgs": []},
    "webhook": {
        "failurePolicy": "Ignore",
        "timeoutSeconds": 5,
        "excludeNamespaces": [],
        "namespaceSelectorExpressions": [],
        "service": {"port": 443},
        "url": "",
        "certificates": {
            "secretName": "",
            "caValidityDays": 1825,
            "servingValidityDays": 365,
            "extraDNSNames": [],
            "extraIPAddresses": [],
        },
    },
    "postgresql": {"enabled": True, "auth": {"existingSecret": ""}},
    "externalDatabase": {"existingSecret": "", "existingSecretKey": "dsn"},
}


def sim_values(extra_ips: tuple[str, ...] = ("127.0.0.1",), **overrides: Any) -> dict[str, Any]:
    """Values for the simulator: the certificate also names the loopback address the controller listens on."""
    values: dict[str, Any] = {"webhook": {"certificates": {"extraIPAddresses": list(extra_ips)}}}
    for key, value in overrides.items():
        values[key] = value
    return values


def merged(values: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` over ``DEFAULTS`` as helm merges a values file over values.yaml: maps merge, the rest
    (lists included) replaces."""

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in top.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out

    return merge(DEFAULTS, values or {})


# --- the chart's named templates (chart/templates/_helpers.tpl) -----------------------------------------


def _trunc(name: str) -> str:
    """``trunc 63 | trimSuffix "-"``: a DNS label."""
    name = name[:63]
    return name[:-1] if name.endswith("-") else name


def _name(v: dict[str, Any]) -> str:
    return _trunc(v["nameOverride"] or CHART_NAME)


def fullname(v: dict[str, Any], release: str) -> str:
    if v["fullnameOverride"]:
        return _trunc(v["fullnameOverride"])
    name = v["nameOverride"] or CHART_NAME
    return _trunc(release if name in release else f"{release}-{name}")


def _component_labels(v: dict[str, Any], release: str, component: str) -> dict[str, str]:
    return {
        "helm.sh/chart": _trunc(f"{CHART_NAME}-{CHART_VERSION}".replace("+", "_")),
        "app.kubernetes.io/name": _name(v),
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/version": APP_VERSION,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/part-of": "fluxqueue",
        "app.kubernetes.io/component": component,
    }


def _go(value: Any) -> str:
    """A value as ``{{ }}`` prints it. Numbers from a values file are float64 in helm, which Go prints in the
    fewest digits, with an exponent from 1e+06 on (strconv.FormatFloat(x, 'g', -1, 64))."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, int | float):
        return str(value)
    if value == 0:
        return "0"
    sign, digits, exponent = decimal.Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(digits) + exponent  # digits before the decimal point
    if not -4 <= point - 1 < 6:
        text = text[0] + ("." + text[1:] if len(text) > 1 else "") + f"e{point - 1:+03d}"
    elif point <= 0:
        text = "0." + "0" * -point + text
    elif point < len(text):
        text = text[:point] + "." + text[point:]
    else:
        text += "0" * (point - len(text))
    return ("-" if sign else "") + text


def _scalar(value: Any) -> Any:
    """A templated YAML scalar (``port: {{ ... }}``) as a YAML parser reads what helm printed."""
    return yaml.safe_load(_go(value))


def _webhook_name(v: dict[str, Any], release: str) -> str:
    return f"{fullname(v, release)}-webhook"


def _fluxion_address(v: dict[str, Any], release: str, namespace: str) -> str:
    port = int(v["fluxion"]["port"])
    if v["fluxion"]["mode"] == "sidecar":
        return f"127.0.0.1:{port}"
    return f"{fullname(v, release)}-fluxion.{namespace}.svc:{port}"


def _database_secret(v: dict[str, Any], release: str) -> tuple[str, str]:
    if v["postgresql"]["enabled"]:
        return v["postgresql"]["auth"]["existingSecret"] or f"{fullname(v, release)}-postgresql", "dsn"
    secret = v["externalDatabase"]["existingSecret"]
    if not secret:
        raise ConfigError("externalDatabase.existingSecret is required when postgresql.enabled is false")
    return secret, v["externalDatabase"]["existingSecretKey"]


# --- the objects ------------------------------------------------------------------------------------------


def crds() -> list[dict[str, Any]]:
    """The chart's crds/ (generated from this same function's source by hack/gen-crd.py)."""
    from fluxqueue.controller.crd import fluxjob_crd
    from fluxqueue.queues.crd import queue_crd

    return [fluxjob_crd(), queue_crd()]


# What each webhook intercepts (chart/templates/mutatingwebhookconfiguration.yaml says why).
WEBHOOK_RULES: dict[str, dict[str, Any]] = {
    "pods.webhook.fluxqueue.io": {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
        "scope": "Namespaced",
    },
    "jobs.webhook.fluxqueue.io": {
        "apiGroups": ["batch"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["jobs"],
        "scope": "Namespaced",
    },
    "workloads.webhook.fluxqueue.io": {
        "apiGroups": ["jobset.x-k8s.io", "kubeflow.org"],
        "apiVersions": ["v1alpha2", "v2beta1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["jobsets", "mpijobs"],
        "scope": "Namespaced",
    },
}


def webhook_configuration(
    values: dict[str, Any] | None = None, release: str = DEFAULT_RELEASE, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration (``fluxqueue.webhookCommon`` in _helpers.tpl for each webhook)."""
    v = merged(values)
    hook = v["webhook"]
    if hook["url"]:
        url = hook["url"][:-1] if hook["url"].endswith("/") else hook["url"]
        client_config: dict[str, Any] = {"url": f"{url}/mutate"}
    else:
        client_config = {
            "service": {
                "name": _webhook_name(v, release),
                "namespace": namespace,
                "path": "/mutate",
                "port": _scalar(hook["service"]["port"]),
            }
        }
    excluded = [
        _go(n) for n in dict.fromkeys([*KUBERNETES_NAMESPACES, namespace, *hook["excludeNamespaces"]])
    ]
    common = {
        "clientConfig": client_config,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": _scalar(hook["failurePolicy"]),
        "timeoutSeconds": _scalar(hook["timeoutSeconds"]),
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded},
                *copy.deepcopy(hook["namespaceSelectorExpressions"]),
            ]
        },
        "objectSelector": {
            "matchExpressions": [{"key": names.LABEL_SKIP, "operator": "NotIn", "values": ["true"]}]
        },
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": _webhook_name(v, release), "labels": _component_labels(v, release, "webhook")},
        "webhooks": [
            {"name": name, "rules": [copy.deepcopy(rule)], **copy.deepcopy(common)}
            for name, rule in WEBHOOK_RULES.items()
        ],
    }


def registered_objects(
    values: dict[str, Any] | None = None, release: str = DEFAULT_RELEASE, namespace: str = DEFAULT_NAMESPACE
) -> list[dict[str, Any]]:
    """What the simulator registers, in order: the CRDs, then the MutatingWebhookConfiguration."""
    return [*crds(), webhook_configuration(values, release, namespace)]


def controller_container(
    values: dict[str, Any] | None = None, release: str = DEFAULT_RELEASE, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, Any]:
    """The controller container's name, args and env (chart/templates/controller-deployment.yaml)."""
    v = merged(values)
    c, hook, certs = v["controller"], v["webhook"], v["webhook"]["certificates"]
    full = fullname(v, release)
    args = [
        f"--log-level={_go(v['logLevel'])}",
        f"--log-format={_go(v['logFormat'])}",
        "controller",
        "--namespace=$(POD_NAMESPACE)",
        f"--fluxion-address={_fluxion_address(v, release, namespace)}",
        f"--strategy={_go(c['strategy'])}",
        f"--policy={_go(v['fluxion']['policy'])}",
        f"--default-duration={_go(c['defaultDuration'])}",
        f"--group-timeout={_go(c['groupTimeoutSeconds'])}",
        f"--qps={_go(c['qps'])}",
        f"--burst={_go(c['burst'])}",
    ]
    if hook["excludeNamespaces"]:
        args.append(f"--skip-namespaces={','.join(map(_go, hook['excludeNamespaces']))}")
    args += [
        "--webhook-host=0.0.0.0",
        f"--webhook-port={_go(c['ports']['webhook'])}",
        "--metrics-host=0.0.0.0",
        f"--metrics-port={_go(c['ports']['metrics'])}",
        f"--webhook-service={_webhook_name(v, release)}",
        f"--webhook-configuration={_webhook_name(v, release)}",
        f"--webhook-secret={certs['secretName'] or f'{full}-webhook-tls'}",
        f"--ca-validity-days={_go(certs['caValidityDays'])}",
        f"--serving-validity-days={_go(certs['servingValidityDays'])}",
        *(f"--webhook-extra-dns={_go(name)}" for name in certs["extraDNSNames"]),
        *(f"--webhook-extra-ip={_go(ip)}" for ip in certs["extraIPAddresses"]),
    ]
    election = c["leaderElection"]
    if election["enabled"]:
        args += [
            "--leader-elect",
            f"--lease-name={election['leaseName'] or f'{full}-controller'}",
            f"--lease-duration={_go(election['leaseDurationSeconds'])}",
            f"--renew-deadline={_go(election['renewDeadlineSeconds'])}",
            f"--retry-period={_go(election['retryPeriodSeconds'])}",
        ]
    else:
        args.append("--no-leader-election")
    args += [_go(a) for a in c["extraArgs"]]
    secret, key = _database_secret(v, release)
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "FLUXQUEUE_DSN", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}},
        *copy.deepcopy(c["extraEnv"]),
    ]
    return {"name": "controller", "args": args, "env": env}


def fluxion_container(
    values: dict[str, Any] | None = None, release: str = DEFAULT_RELEASE, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, Any]:
    """The Fluxion container's name and args (``fluxqueue.fluxionContainer`` in _helpers.tpl)."""
    v = merged(values)
    f = v["fluxion"]
    args = [
        f"--log-level={_go(v['logLevel'])}",
        f"--log-format={_go(v['logFormat'])}",
        "fluxion",
        "serve",
        f"--host={'127.0.0.1' if f['mode'] == 'sidecar' else '0.0.0.0'}",
        f"--port={_go(f['port'])}",
        f"--policy={_go(f['policy'])}",
        *(_go(a) for a in f["extraArgs"]),
    ]
    return {"name": "fluxion", "args": args}


# --- registering them -------------------------------------------------------------------------------------

_RESOURCES = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
}


async def install(client: Any, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create ``objects`` (cluster-scoped: the CRDs and the webhook configuration) through ``client`` (the
    emulator's in-process client or ``fluxqueue.kube.client``), in order."""
    created = []
    for obj in objects:
        group, _, version = obj["apiVersion"].rpartition("/")
        created.append(await client.create((group, version, _RESOURCES[obj["kind"]]), obj))
    return created
