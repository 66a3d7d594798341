"""The real kubectl 1.35 and helm 4.1 against the emulator: the round trips users and our chart rely on."""

from __future__ import annotations

import asyncio
import json
import os

import yaml

from fluxqueue.sim.apiserver import resources as R

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, keep: "yes"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx:1.25
        env: [{name: A, value: "1"}, {name: B, value: "1"}]
"""


async def test_client_side_apply_get_label_patch_describe_delete(kubectl, apiserver):
    out = await kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert "deployment.apps/web created" in out.stdout
    # change a value, drop a label and an env entry: the last-applied strategic merge removes them
    changed = (
        DEPLOYMENT.replace('keep: "yes"', "")
        .replace(', {name: B, value: "1"}', "")
        .replace('value: "1"', 'value: "2"')
    )
    out = await kubectl("apply", "-f", "-", stdin=changed)
    assert "configured" in out.stdout
    dep = json.loads((await kubectl("get", "deployment", "web", "-o", "json")).stdout)
    assert dep["metadata"]["labels"] == {"app": "web"}
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert dep["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]

    await kubectl("label", "deployment", "web", "tier=frontend")
    await kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:1.26"}]}}}}',
    )
    await kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    await kubectl(
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/annotations/x","value":"y"}]',
    )
    dep = yaml.safe_load((await kubectl("get", "deploy", "web", "-o", "yaml")).stdout)
    assert dep["metadata"]["labels"]["tier"] == "frontend"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "nginx:1.26" and c["env"] == [{"name": "A", "value": "2"}]  # merged by name
    assert dep["spec"]["replicas"] == 3 and dep["metadata"]["annotations"]["x"] == "y"

    await kubectl("scale", "deployment", "web", "--replicas=4")
    assert (await apiserver.client.get(R.DEPLOYMENTS, "web", namespace="default"))["spec"]["replicas"] == 4
    table = (await kubectl("get", "deploy", "-o", "wide")).stdout
    assert table.split("\n")[0].split()[:4] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"]
    described = (await kubectl("describe", "deployment", "web")).stdout
    assert "Name:" in described and "web" in described
    await kubectl("delete", "deployment", "web")
    gone = await kubectl("get", "deployment", "web", check=False)
    assert gone.returncode != 0 and 'deployments.apps "web" not found' in gone.stderr


async def test_pods_table_wide_logs_and_server_dry_run(kubectl, apiserver):
    await kubectl("run", "p1", "--image=busybox", "--restart=Never")
    wide = (await kubectl("get", "pods", "-o", "wide")).stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert wide[1].split()[:3] == ["p1", "0/1", "Pending"]
    logs = await kubectl("logs", "p1", check=False)
    assert logs.returncode != 0 and "is waiting to start" in logs.stderr
    await kubectl("run", "p2", "--image=busybox", "--dry-run=server", "-o", "name")
    assert [p["metadata"]["name"] for p in (await apiserver.client.list(R.PODS))["items"]] == ["p1"]
    typo = await kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndatta: {a: b}\n",
        check=False,
    )
    assert typo.returncode != 0 and 'unknown field "datta"' in typo.stderr


async def test_imperative_creates_sent_as_protobuf(kubectl, apiserver):
    # typed client-go clients encode built-in objects as protobuf; the emulator decodes them
    await kubectl("create", "namespace", "team")
    await kubectl("-n", "team", "create", "job", "j1", "--image=busybox", "--", "echo", "hi")
    await kubectl("-n", "team", "create", "deployment", "d1", "--image=nginx", "--replicas=2")
    await kubectl("-n", "team", "create", "secret", "generic", "s1", "--from-literal=a=b")
    job = await apiserver.client.get(R.JOBS, "j1", namespace="team")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert (c["image"], c["command"]) == ("busybox", ["echo", "hi"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert (await apiserver.client.get(R.DEPLOYMENTS, "d1", namespace="team"))["spec"]["replicas"] == 2
    assert (await apiserver.client.get(R.SECRETS, "s1", namespace="team"))["data"] == {"a": "Yg=="}
    assert (await kubectl("auth", "can-i", "create", "pods")).stdout.strip() == "yes"
    await kubectl("delete", "namespace", "team", "--wait=true", limit_s=30)
    assert (await apiserver.client.list(R.JOBS, namespace="team"))["items"] == []


async def test_get_watch_streams_changes(apiserver, tools):
    env = dict(os.environ, KUBECONFIG=str(apiserver.kubeconfig_path))
    proc = await asyncio.create_subprocess_exec(
        str(tools.kubectl),
        "get",
        "pods",
        "-w",
        "--no-headers",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        await asyncio.sleep(0.5)
        pod = {"metadata": {"name": "watched"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        await apiserver.client.create(R.PODS, pod, namespace="default")
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.decode().split()[:3] == ["watched", "0/1", "Pending"]
        await apiserver.client.patch(
            R.PODS, "watched", {"metadata": {"labels": {"a": "b"}}}, namespace="default"
        )
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.decode().split()[0] == "watched"
    finally:
        proc.kill()
        await proc.wait()


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties: {phase: {type: string}}
"""


async def test_crd_is_served_with_printer_columns_validation_and_pruning(kubectl, apiserver):
    await kubectl("apply", "-f", "-", stdin=CRD)
    crd = json.loads((await kubectl("get", "crd", "widgets.example.com", "-o", "json")).stdout)
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    await kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, free: {any: [1]}}\nstatus: {phase: Nope}\n",
    )
    await apiserver.client.patch(
        ("example.com", "v1", "widgets"),
        "w1",
        {"status": {"phase": "Ready"}},
        namespace="default",
        subresource="status",
    )
    lines = (await kubectl("get", "wd")).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PHASE"]
    assert lines[1].split() == ["w1", "3", "Ready"]
    w = await apiserver.client.get(("example.com", "v1", "widgets"), "w1", namespace="default")
    assert w["spec"] == {"size": 3, "free": {"any": [1]}}
    bad = await kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n",
        check=False,
    )
    assert bad.returncode != 0 and "spec.size" in bad.stderr and "greater than or equal to 1" in bad.stderr
    # without strict validation, unknown fields are pruned
    await apiserver.client.create(
        ("example.com", "v1", "widgets"),
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w3"},
            "spec": {"size": 1, "junk": 1},
        },
        namespace="default",
    )
    assert (await apiserver.client.get(("example.com", "v1", "widgets"), "w3", namespace="default"))[
        "spec"
    ] == {"size": 1}


async def test_server_side_apply_twice_then_conflict_and_force(kubectl):
    out = await kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert "serverside-applied" in out.stdout
    out = await kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert "serverside-applied" in out.stdout
    other = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n"
    clash = await kubectl(
        "apply", "--server-side", "--field-manager=other", "-f", "-", stdin=other, check=False
    )
    assert clash.returncode != 0 and "conflict" in clash.stderr and ".spec.replicas" in clash.stderr
    await kubectl(
        "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-", stdin=other
    )
    dep = json.loads((await kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields")).stdout)
    assert dep["spec"]["replicas"] == 5
    owners = {m["manager"]: m["fieldsV1"] for m in dep["metadata"]["managedFields"]}
    assert "f:replicas" in owners["other"]["f:spec"] and "f:replicas" not in owners["kubectl"]["f:spec"]


async def test_helm_install_and_uninstall(helm, kubectl, apiserver, tmp_path):
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "all.yaml").write_text(
        """apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-cm}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-dep}
spec:
  replicas: 1
  selector: {matchLabels: {app: tiny}}
  template:
    metadata: {labels: {app: tiny}}
    spec:
      containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}-svc}
spec:
  selector: {app: tiny}
  ports: [{port: 80}]
"""
    )
    out = await helm("install", "r1", str(chart))
    assert "STATUS: deployed" in out.stdout
    names = (await kubectl("get", "cm,deploy,svc", "-o", "name")).stdout.split()
    assert {"configmap/r1-cm", "deployment.apps/r1-dep", "service/r1-svc"} <= set(names)
    cm = await apiserver.client.get(R.CONFIGMAPS, "r1-cm", namespace="default")
    assert any(m["manager"] == "helm" and m["operation"] == "Apply" for m in cm["metadata"]["managedFields"])
    await helm("upgrade", "r1", str(chart), "--set", "x=1")
    await helm("uninstall", "r1")
    left = (await kubectl("get", "cm,deploy,svc,secret", "-o", "name")).stdout.split()
    assert [n for n in left if "r1" in n] == []


WEBHOOKS = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: two}
webhooks:
- name: a.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  clientConfig: {url: "https://127.0.0.1:1/a"}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}]
- name: b.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  clientConfig: {url: "https://127.0.0.1:1/b"}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}]
"""


async def test_client_side_apply_merges_webhooks_by_name(kubectl, apiserver):
    await kubectl("apply", "-f", "-", stdin=WEBHOOKS)
    await kubectl("apply", "-f", "-", stdin=WEBHOOKS.replace("/b", "/b2"))
    cfg = await apiserver.client.get(R.MUTATING_WEBHOOKS, "two")
    assert [(w["name"], w["clientConfig"]["url"]) for w in cfg["webhooks"]] == [
        ("a.example.com", "https://127.0.0.1:1/a"),
        ("b.example.com", "https://127.0.0.1:1/b2"),
    ]
