"""Pod scheduling-gate and binding rules, pod and Job update rules, as the real API server enforces them."""

from __future__ import annotations

import pytest
from support.polling import eventually

from fluxqueue.kube.client import binding_body
from fluxqueue.kube.names import SCHEDULER_NAME, SCHEDULING_GATE
from fluxqueue.sim.apiserver import APIError, APIServer
from fluxqueue.sim.apiserver import resources as R


def gated_pod(name: str = "p") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "schedulerName": SCHEDULER_NAME,
            "schedulingGates": [{"name": SCHEDULING_GATE}],
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}],
        },
    }


async def test_a_gated_pod_reports_scheduling_gated_and_cannot_be_bound(api):
    c = api.client
    p = await c.create(R.PODS, gated_pod(), namespace="default")
    cond = p["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("PodScheduled", "False", "SchedulingGated")
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, binding_body("p", "n1"), namespace="default", subresource="binding")
    assert e.value.code == 409 and e.value.message.endswith("pod p has non-empty .spec.schedulingGates")


async def test_gates_can_only_be_removed_after_creation(api):
    c = api.client
    await c.create(R.PODS, gated_pod(), namespace="default")
    with pytest.raises(APIError) as e:
        await c.patch(
            R.PODS,
            "p",
            {"spec": {"schedulingGates": [{"name": SCHEDULING_GATE}, {"name": "other/gate"}]}},
            namespace="default",
        )
    assert e.value.code == 422 and "only deletion is allowed" in e.value.message
    ungated = await c.patch(
        R.PODS,
        "p",
        [{"op": "remove", "path": "/spec/schedulingGates"}],
        namespace="default",
        patch_type="json",
    )
    assert not ungated["spec"].get("schedulingGates")
    with pytest.raises(APIError) as e:
        await c.patch(
            R.PODS,
            "p",
            {"spec": {"schedulingGates": [{"name": SCHEDULING_GATE}]}},
            namespace="default",
            patch_type="strategic",
        )
    assert e.value.code == 422


async def test_binding_sets_node_and_condition_and_refuses_a_second_bind(api):
    c = api.client
    await c.create(R.PODS, gated_pod(), namespace="default")
    await c.patch(R.PODS, "p", {"spec": {"schedulingGates": None}}, namespace="default")
    out = await c.create(R.PODS, binding_body("p", "node-1"), namespace="default", subresource="binding")
    assert out["status"] == "Success"
    p = await c.get(R.PODS, "p", namespace="default")
    assert p["spec"]["nodeName"] == "node-1"
    assert [(x["type"], x["status"]) for x in p["status"]["conditions"]] == [("PodScheduled", "True")]
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, binding_body("p", "node-2"), namespace="default", subresource="binding")
    assert e.value.code == 409 and 'is already assigned to node "node-1"' in e.value.message


async def test_a_terminating_pod_cannot_be_bound(api):
    c = api.client
    pod = gated_pod()
    pod["metadata"]["finalizers"] = ["example.com/keep"]
    del pod["spec"]["schedulingGates"]
    await c.create(R.PODS, pod, namespace="default")
    await c.delete(R.PODS, "p", namespace="default")
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, binding_body("p", "n"), namespace="default", subresource="binding")
    assert e.value.code == 409 and "is being deleted" in e.value.message


async def test_scheduler_name_and_most_of_the_spec_are_immutable(api):
    c = api.client
    await c.create(R.PODS, gated_pod(), namespace="default")
    with pytest.raises(APIError) as e:
        await c.patch(R.PODS, "p", {"spec": {"schedulerName": "default-scheduler"}}, namespace="default")
    assert e.value.code == 422 and "pod updates may not change fields" in e.value.message
    img = await c.patch(
        R.PODS,
        "p",
        {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}},
        namespace="default",
        patch_type="strategic",
    )
    assert img["spec"]["containers"][0]["image"] == "busybox:2"


async def test_gated_pods_may_tighten_node_selector_and_affinity_only_while_gated(api):
    c = api.client
    await c.create(R.PODS, gated_pod(), namespace="default")
    await c.patch(R.PODS, "p", {"spec": {"nodeSelector": {"zone": "a"}}}, namespace="default")
    with pytest.raises(APIError):
        await c.patch(R.PODS, "p", {"spec": {"nodeSelector": {"zone": "b"}}}, namespace="default")
    term = {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1"]}]}
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    await c.patch(R.PODS, "p", {"spec": {"affinity": aff}}, namespace="default")
    wider = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": []}]
            }
        }
    }
    with pytest.raises(APIError):
        await c.patch(R.PODS, "p", {"spec": {"affinity": wider}}, namespace="default")
    await c.patch(R.PODS, "p", {"spec": {"schedulingGates": None}}, namespace="default")
    with pytest.raises(APIError) as e:
        await c.patch(
            R.PODS, "p", {"spec": {"nodeSelector": {"zone": "a", "extra": "x"}}}, namespace="default"
        )
    assert e.value.code == 422


def job(suspend: bool) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "suspend": suspend,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
        },
    }


async def test_job_defaults_and_selector(api):
    j = await api.client.create(R.JOBS, job(False), namespace="default")
    spec = j["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"]) == ("NonIndexed", False)
    uid = j["metadata"]["uid"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/controller-uid"] == uid and labels["job-name"] == "j"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


async def test_suspended_never_started_job_template_scheduling_directives_are_mutable(api):
    c = api.client
    await c.create(R.JOBS, job(True), namespace="default")
    patch = {
        "spec": {"template": {"metadata": {"labels": {"q": "1"}}, "spec": {"nodeSelector": {"rack": "r1"}}}}
    }
    out = await c.patch(R.JOBS, "j", patch, namespace="default", patch_type="strategic")
    assert out["spec"]["template"]["spec"]["nodeSelector"] == {"rack": "r1"}
    with pytest.raises(APIError) as e:
        await c.patch(
            R.JOBS,
            "j",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}},
            namespace="default",
            patch_type="strategic",
        )
    assert e.value.code == 422 and "spec.template" in e.value.message


async def test_running_job_template_is_immutable(api):
    c = api.client
    await c.create(R.JOBS, job(False), namespace="default")
    with pytest.raises(APIError) as e:
        await c.patch(
            R.JOBS,
            "j",
            {"spec": {"template": {"spec": {"nodeSelector": {"rack": "r1"}}}}},
            namespace="default",
        )
    assert e.value.code == 422


async def test_priority_class_name_resolves_to_priority_before_webhooks(api):
    c = api.client
    await c.create(
        R.PRIORITYCLASSES,
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "high"},
            "value": 1000,
        },
    )
    pod = gated_pod()
    pod["spec"]["priorityClassName"] = "high"
    p = await c.create(R.PODS, pod, namespace="default")
    assert p["spec"]["priority"] == 1000 and p["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    critical = gated_pod("c")
    critical["spec"]["priorityClassName"] = "system-node-critical"
    assert (await c.create(R.PODS, critical, namespace="default"))["spec"]["priority"] == 2000001000
    missing = gated_pod("m")
    missing["spec"]["priorityClassName"] = "nope"
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, missing, namespace="default")
    assert e.value.code == 403 and "no PriorityClass with name nope was found" in e.value.message


async def test_bound_running_pod_deletion_is_graceful_until_the_kubelet_finishes():
    api = APIServer(terminating_pod_timeout=0.2)
    c = api.client
    try:
        pod = gated_pod()
        del pod["spec"]["schedulingGates"]
        await c.create(R.PODS, pod, namespace="default")
        await c.create(R.PODS, binding_body("p", "n1"), namespace="default", subresource="binding")
        await c.patch(
            R.PODS, "p", {"status": {"phase": "Running"}}, namespace="default", subresource="status"
        )
        out = await c.delete(R.PODS, "p", namespace="default")
        assert out["metadata"]["deletionTimestamp"] and out["metadata"]["deletionGracePeriodSeconds"] == 30
        assert (await c.get(R.PODS, "p", namespace="default"))["metadata"]["deletionTimestamp"]
        # the kubelet confirms with grace 0 once containers stopped
        await c.delete(R.PODS, "p", namespace="default", grace_period_seconds=0)
        with pytest.raises(APIError):
            await c.get(R.PODS, "p", namespace="default")
        # without a kubelet, the emulator finishes it after terminating_pod_timeout
        await c.create(R.PODS, pod, namespace="default")
        await c.create(R.PODS, binding_body("p", "n1"), namespace="default", subresource="binding")
        await c.create(
            R.PODS,
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}},
            namespace="default",
            subresource="eviction",
        )
        assert (await c.get(R.PODS, "p", namespace="default"))["metadata"]["deletionTimestamp"]

        async def gone():
            return (await c.list(R.PODS))["items"] == []

        await eventually(gone, limit_s=10)
    finally:
        await api.stop()


async def test_requests_above_limits_and_bad_quantities_are_invalid(api):
    bad = gated_pod()
    bad["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    with pytest.raises(APIError) as e:
        await api.client.create(R.PODS, bad, namespace="default")
    assert e.value.code == 422 and "must be less than or equal to cpu limit of 1" in e.value.message
    bad["spec"]["containers"][0]["resources"] = {"requests": {"memory": "lots"}}
    with pytest.raises(APIError) as e:
        await api.client.create(R.PODS, bad, namespace="default")
    assert e.value.code == 422 and "quantities must match" in e.value.message
