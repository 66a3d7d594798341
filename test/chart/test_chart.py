"""The Helm chart as a cluster admin meets it: real `helm lint` and `helm template`, every rendered object
valid against the Kubernetes 1.35 schemas, and the safety properties the README promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from support.helm import CHART_DIR, of_kind, one_of_kind, render_chart

from fluxqueue.kube import names

KUBE_VERSION = "1.35.0"
NAMESPACE = "fluxqueue-system"

# Each variant is linted, rendered and schema-validated.
VARIANTS = {
    "default": {},
    "external-database": {
        "postgresql": {"enabled": False},
        "externalDatabase": {"existingSecret": "my-db", "existingSecretKey": "url"},
    },
    "fluxion-deployment": {"fluxion": {"mode": "deployment"}},
    "ha-fail-closed": {
        "controller": {"replicas": 2},
        "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 3, "excludeNamespaces": ["batch-system"]},
    },
    "network-policy": {"networkPolicy": {"enabled": True}, "fluxion": {"mode": "deployment"}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "webhook-url-for-development": {
        "webhook": {"url": "https://10.0.0.5:9443"},
        "image": {"digest": "sha256:" + "a" * 64},
    },
    "no-persistence-no-leader-election": {
        "postgresql": {"persistence": {"enabled": False}},
        "controller": {"leaderElection": {"enabled": False}, "migrateOnStart": False},
    },
}
# Kinds served by a CRD the Kubernetes schemas do not include; skipped for that kind only.
CRD_KINDS = {"ServiceMonitor"}  # monitoring.coreos.com/v1, from prometheus-operator


def helm(tools, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(tools.helm), *args], capture_output=True, text=True, check=check, timeout=120)


def values_file(tmp_path: Path, values: dict) -> str:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    return str(path)


@pytest.fixture(scope="module")
def rendered(tools) -> dict[str, list[dict]]:
    import asyncio

    async def all_variants():
        jobs = [render_chart(v, namespace=NAMESPACE, helm=str(tools.helm)) for v in VARIANTS.values()]
        return dict(zip(VARIANTS, await asyncio.gather(*jobs), strict=True))

    return asyncio.run(all_variants())


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_passes(tools, variant, tmp_path):
    values = values_file(tmp_path, VARIANTS[variant])
    out = helm(tools, "lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE, "-f", values)
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_valid_kubernetes(rendered, variant):
    manifests = rendered[variant]
    assert manifests
    for obj in manifests:
        if obj["kind"] in CRD_KINDS:
            continue
        # strict: unknown fields are errors, so a misspelt key in a template cannot hide.
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_schema_validation_would_catch_a_misspelt_field(rendered):
    deployment = one_of_kind(rendered["default"], "Deployment")
    deployment = yaml.safe_load(yaml.safe_dump(deployment))
    deployment["spec"]["template"]["spec"]["containers"][0]["secruityContext"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(
    "bad",
    [
        ["--set", "controler.replicas=2"],  # typo'd key
        ["--set", "webhook.certificates.secretname=x"],  # typo'd nested key
        ["--set", "controller.replicas=two"],
        ["--set", "webhook.failurePolicy=Fial"],
        ["--set", "webhook.timeoutSeconds=60"],
        ["--set", "fluxion.mode=daemonset"],
        ["--set", "postgresql.enabled=false"],  # external database without its Secret
    ],
)
def test_values_schema_rejects_typos_and_bad_values(tools, bad):
    out = helm(tools, "template", "fluxqueue", str(CHART_DIR), *bad, check=False)
    assert out.returncode != 0
    assert "schema" in out.stderr or "values don't meet" in out.stderr


def _webhooks(manifests):
    return one_of_kind(manifests, "MutatingWebhookConfiguration")["webhooks"]


def test_webhook_never_blocks_the_cluster_by_default(rendered):
    hooks = _webhooks(rendered["default"])
    assert {h["name"] for h in hooks} == {
        "pods.webhook.fluxqueue.io",
        "jobs.webhook.fluxqueue.io",
        "workloads.webhook.fluxqueue.io",
    }
    for hook in hooks:
        assert hook["failurePolicy"] == "Ignore"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["matchPolicy"] == "Equivalent"
        assert 1 <= hook["timeoutSeconds"] <= 10
        assert hook["clientConfig"]["service"] == {
            "name": "fluxqueue-webhook",
            "namespace": NAMESPACE,
            "path": "/mutate",
            "port": 443,
        }
        (ns_expr,) = hook["namespaceSelector"]["matchExpressions"]
        assert ns_expr == {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", "kube-public", "kube-node-lease", NAMESPACE],
        }
        (obj_expr,) = hook["objectSelector"]["matchExpressions"]
        assert obj_expr == {"key": names.LABEL_SKIP, "operator": "NotIn", "values": ["true"]}
    rules = {
        (group, resource): r["operations"]
        for h in hooks
        for r in h["rules"]
        for group in r["apiGroups"]
        for resource in r["resources"]
    }
    assert rules == {
        ("", "pods"): ["CREATE"],
        ("batch", "jobs"): ["CREATE", "UPDATE"],
        # Every (group, resource) pair of one rule matches: JobSets and MPIJobs share theirs.
        ("jobset.x-k8s.io", "jobsets"): ["CREATE", "UPDATE"],
        ("jobset.x-k8s.io", "mpijobs"): ["CREATE", "UPDATE"],
        ("kubeflow.org", "jobsets"): ["CREATE", "UPDATE"],
        ("kubeflow.org", "mpijobs"): ["CREATE", "UPDATE"],
    }


def test_fail_closed_option_is_applied_to_every_webhook(rendered):
    for hook in _webhooks(rendered["ha-fail-closed"]):
        assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 3
        assert "batch-system" in hook["namespaceSelector"]["matchExpressions"][0]["values"]


def test_webhook_service_routes_443_to_the_controller_webhook_port(rendered):
    manifests = rendered["default"]
    service = next(s for s in of_kind(manifests, "Service") if s["metadata"]["name"] == "fluxqueue-webhook")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 443 and port["targetPort"] == "webhook"
    container = _container(manifests, "controller")
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    assert (
        service["spec"]["selector"] == one_of_kind(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    )


def _pod_spec(manifests, deployment_suffix="-controller"):
    for d in of_kind(manifests, "Deployment"):
        if d["metadata"]["name"].endswith(deployment_suffix):
            return d["spec"]["template"]["spec"]
    raise AssertionError(deployment_suffix)


def _container(manifests, name):
    spec = _pod_spec(manifests)
    for c in spec["containers"] + spec.get("initContainers", []):
        if c["name"] == name:
            return c
    raise AssertionError(name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_runs_non_root_read_only_without_capabilities(rendered, variant):
    for workload in of_kind(rendered[variant], "Deployment") + of_kind(rendered[variant], "StatefulSet"):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"
            assert "resources" in c and c["resources"].get("requests"), c["name"]
        # fluxqueue's own pods are never queued by fluxqueue.
        assert workload["spec"]["template"]["metadata"]["labels"][names.LABEL_SKIP] == "true"


def test_controller_probes_and_leader_election(rendered):
    c = _container(rendered["default"], "controller")
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert "--leader-elect" in c["args"] and "--lease-name=fluxqueue-controller" in c["args"]
    assert c["args"][2] == "controller"
    assert (
        "--no-leader-election"
        in _container(rendered["no-persistence-no-leader-election"], "controller")["args"]
    )


def test_fluxion_is_a_native_sidecar_by_default_and_a_service_when_asked(rendered):
    sidecar = _container(rendered["default"], "fluxion")
    assert sidecar["restartPolicy"] == "Always"  # native sidecar: up before the controller
    assert sidecar["args"][2:4] == ["fluxion", "serve"]
    assert "--fluxion-address=127.0.0.1:4242" in _container(rendered["default"], "controller")["args"]

    manifests = rendered["fluxion-deployment"]
    assert all(c["name"] != "fluxion" for c in _pod_spec(manifests).get("initContainers", []))
    fluxion = next(
        d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"] == "fluxqueue-fluxion"
    )
    assert fluxion["spec"]["replicas"] == 1 and fluxion["spec"]["strategy"]["type"] == "Recreate"
    assert fluxion["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert any(s["metadata"]["name"] == "fluxqueue-fluxion" for s in of_kind(manifests, "Service"))
    assert (
        f"--fluxion-address=fluxqueue-fluxion.{NAMESPACE}.svc:4242"
        in _container(manifests, "controller")["args"]
    )


def _dsn_ref(manifests):
    env = {e["name"]: e for e in _container(manifests, "controller")["env"]}
    return env["FLUXQUEUE_DSN"]["valueFrom"]["secretKeyRef"]


def test_database_is_in_chart_postgresql_or_an_existing_secret(rendered):
    default = rendered["default"]
    sts = one_of_kind(default, "StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert _dsn_ref(default) == {"name": "fluxqueue-postgresql", "key": "dsn"}
    secret = one_of_kind(default, "Secret")
    assert set(secret["data"]) == {"password", "dsn"}
    # The migrate init container runs first with the same DSN.
    assert _container(default, "migrate")["args"][-1] == "migrate"

    external = rendered["external-database"]
    assert not of_kind(external, "StatefulSet") and not of_kind(external, "Secret")
    assert _dsn_ref(external) == {"name": "my-db", "key": "url"}


def test_rbac_is_least_privilege(rendered):
    manifests = rendered["default"]
    cluster_rules = one_of_kind(manifests, "ClusterRole")["rules"]
    for rule in cluster_rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "secrets" not in rule["resources"], "no cluster-wide secret access"
        if rule["resources"] in (["jobs"], ["nodes"]):
            assert "delete" not in rule["verbs"]
        if rule["apiGroups"] == ["apiextensions.k8s.io"]:
            assert rule["verbs"] == ["get"] and rule["resourceNames"] == [
                names.CRD_NAME,
                "queues.fluxqueue.io",
            ]
    webhook_rule = next(r for r in cluster_rules if r["resources"] == ["mutatingwebhookconfigurations"])
    assert webhook_rule["resourceNames"] == ["fluxqueue-webhook"] and set(webhook_rule["verbs"]) == {
        "get",
        "patch",
    }
    assert ["create"] == next(r for r in cluster_rules if r["resources"] == ["pods/binding"])["verbs"]

    role = one_of_kind(manifests, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    secret_rules = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    named = [r for r in secret_rules if "resourceNames" in r]
    assert named[0]["resourceNames"] == ["fluxqueue-webhook-tls"]
    assert all(r.get("resourceNames") or r["verbs"] == ["create"] for r in role["rules"])


def test_network_policy_and_service_monitor_are_optional(rendered):
    assert not of_kind(rendered["default"], "NetworkPolicy") and not of_kind(
        rendered["default"], "ServiceMonitor"
    )
    policies = {p["metadata"]["name"] for p in of_kind(rendered["network-policy"], "NetworkPolicy")}
    assert policies == {"fluxqueue-controller", "fluxqueue-fluxion", "fluxqueue-postgresql"}
    monitor = one_of_kind(rendered["service-monitor"], "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"


def test_pod_disruption_budget_only_with_replicas(rendered):
    assert not of_kind(rendered["default"], "PodDisruptionBudget")
    assert one_of_kind(rendered["ha-fail-closed"], "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_every_object_carries_the_recommended_labels(rendered):
    for obj in rendered["default"]:
        if obj["kind"] == "CustomResourceDefinition":
            continue  # crds/ are installed as-is by helm, not templated
        labels = obj["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"):
            assert key in labels, (obj["kind"], key)


def test_notes_tell_how_to_submit_a_job_and_psql_into_the_queue(tools, tmp_path: Path):
    out = helm(tools, "install", "fluxqueue", str(CHART_DIR), "--dry-run=client", "-n", NAMESPACE)
    assert "kind: Job" in out.stdout and "kubectl get fluxjobs" in out.stdout
    assert "psql -U fluxqueue -d fluxqueue" in out.stdout and "fluxqueue.queue" in out.stdout


def test_sidecar_startup_probe_reaches_the_loopback_only_listener(rendered):
    sidecar = _container(rendered["default"], "fluxion")
    assert "--host=127.0.0.1" in sidecar["args"]
    # kubelet probes dial the pod IP, which a 127.0.0.1 listener never answers: the probe runs inside.
    assert "tcpSocket" not in sidecar["startupProbe"]
    assert "127.0.0.1', 4242" in sidecar["startupProbe"]["exec"]["command"][-1]


def test_development_url_replaces_the_service_reference_and_digest_pins_the_image(rendered):
    manifests = rendered["webhook-url-for-development"]
    for hook in _webhooks(manifests):
        assert hook["clientConfig"] == {"url": "https://10.0.0.5:9443/mutate"}
    assert _container(manifests, "controller")["image"] == "ghcr.io/fluxqueue/fluxqueue@sha256:" + "a" * 64
