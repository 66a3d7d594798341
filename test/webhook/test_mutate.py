"""The admission decision: what each kind of object becomes, what is left alone, and what is refused.

Every returned patch is applied with an RFC 6902 applier written here (no library is installed), so the tests
check the object the API server would store, not the shape of the ops."""

import base64
import copy
import json

import pytest

from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.webhook.mutate import mutate

CONFIG = WebhookConfig(namespace="fluxqueue-system", extra_system_namespaces=("monitoring",))
MANAGED = "fluxqueue.io/managed"
GATE = {"name": "fluxqueue.io/queued"}


# --- RFC 6902 (add, replace, remove) over RFC 6901 pointers --------------------------------------------------------


def _tokens(pointer):
    assert pointer.startswith("/")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def apply_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _tokens(op["path"])
        target = doc
        for t in parents:
            target = target[int(t)] if isinstance(target, list) else target[t]  # KeyError: missing parent
        if op["op"] == "add":
            if isinstance(target, list):
                target.insert(len(target) if last == "-" else int(last), op["value"])
            else:
                target[last] = op["value"]
        elif op["op"] == "replace":
            assert last in target, f"replace of a missing member {op['path']}"
            target[last] = op["value"]
        elif op["op"] == "remove":
            del target[last]
        else:
            raise AssertionError(f"unexpected op {op}")
    return doc


def review(
    obj, kind="Pod", operation="CREATE", namespace="default", old=None, dry_run=False, sub=None, uid="uid-1"
):
    group = "batch" if kind == "Job" else ""
    req = {
        "uid": uid,
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
        "operation": operation,
        "namespace": namespace,
        "name": obj.get("metadata", {}).get("name", ""),
        "object": obj,
        "dryRun": dry_run,
    }
    if old is not None:
        req["oldObject"] = old
    if sub:
        req["subResource"] = sub
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


def admit(obj, **kw):
    """(response, object after the patch)."""
    out = mutate(review(obj, **kw), CONFIG)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    resp = out["response"]
    assert resp["uid"] == kw.get("uid", "uid-1")
    if "patch" in resp:
        assert resp["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(resp["patch"]))
        assert ops, "an empty patch must be omitted"
        return resp, apply_patch(obj, ops)
    return resp, obj


def pod(name="p", labels=None, annotations=None, owner=None, **spec):
    meta = {"name": name, "namespace": "default"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": owner[0], "kind": owner[1], "name": "o", "uid": "x", "controller": True}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": [{"name": "c", "image": "busybox"}],
            **spec,
        },
    }


def job(
    labels=None, suspend=False, template_labels=None, scheduler="default-scheduler", parallelism=2, **spec
):
    tmeta = {} if template_labels is None else {"labels": template_labels}
    j = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "j",
            "namespace": "default",
            **({"labels": labels} if labels is not None else {}),
        },
        "spec": {
            "parallelism": parallelism,
            "suspend": suspend,
            "template": {
                "metadata": tmeta,
                "spec": {"schedulerName": scheduler, "restartPolicy": "Never", "containers": [{"name": "c"}]},
            },
            **spec,
        },
    }
    return j


# --- Pods ------------------------------------------------------------------------------------------------------


def test_bare_pod_gets_gate_scheduler_and_managed_label():
    resp, out = admit(pod(labels={"app": "x"}))
    assert resp["allowed"]
    assert out["spec"]["schedulerName"] == "fluxqueue"
    assert out["spec"]["schedulingGates"] == [GATE]
    assert out["metadata"]["labels"] == {"app": "x", MANAGED: "true"}
    assert out["spec"]["containers"] == pod()["spec"]["containers"]  # nothing else touched


def test_generate_name_pod_without_labels_or_scheduler_is_managed():
    p = pod(name="")
    p["metadata"]["generateName"] = "worker-"
    del p["spec"]["schedulerName"]
    resp, out = admit(p)
    assert resp["allowed"]
    assert out["metadata"]["labels"] == {MANAGED: "true"}  # /metadata/labels created
    assert out["spec"]["schedulerName"] == "fluxqueue" and out["spec"]["schedulingGates"] == [GATE]


def test_existing_gates_are_kept_and_ours_appended_once():
    p = pod(schedulingGates=[{"name": "example.com/other"}])
    _, out = admit(p)
    assert out["spec"]["schedulingGates"] == [{"name": "example.com/other"}, GATE]
    _, again = admit(out)  # re-admitting an already mutated object changes nothing more
    assert again == out


@pytest.mark.parametrize(
    "owner", [("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet"), ("example.com/v1", "MPIJob")]
)
def test_pods_of_other_controllers_are_handled_per_pod(owner):
    resp, out = admit(pod(owner=owner))
    assert resp["allowed"]
    assert out["spec"]["schedulingGates"] == [GATE] and out["spec"]["schedulerName"] == "fluxqueue"


def test_pods_of_a_job_are_left_for_the_controller_to_bind():
    p = pod(
        owner=("batch/v1", "Job"),
        labels={MANAGED: "true", "batch.kubernetes.io/job-completion-index": "0"},
        schedulerName="fluxqueue",
    )
    resp, out = admit(p)
    assert resp["allowed"] and "patch" not in resp and out == p
    unmanaged = pod(owner=("batch/v1", "Job"))
    resp, out = admit(unmanaged)
    assert "patch" not in resp and out["spec"]["schedulerName"] == "default-scheduler"


@pytest.mark.parametrize(
    "case,obj,namespace",
    [
        ("kube-system", pod(), "kube-system"),
        ("our namespace", pod(), "fluxqueue-system"),
        ("configured namespace", pod(), "monitoring"),
        ("DaemonSet pod", pod(owner=("apps/v1", "DaemonSet")), "default"),
        (
            "mirror pod",
            pod(annotations={"kubernetes.io/config.mirror": "abc"}, owner=("v1", "Node")),
            "default",
        ),
        ("another scheduler", pod(schedulerName="volcano"), "default"),
        ("skip label", pod(labels={"fluxqueue.io/skip": "true"}), "default"),
        ("already bound", pod(nodeName="n1"), "default"),
    ],
)
def test_pods_fluxqueue_never_touches(case, obj, namespace):
    resp, out = admit(obj, namespace=namespace)
    assert resp["allowed"], case
    assert "patch" not in resp, case
    assert out == obj


def test_pod_updates_and_subresources_are_allowed_unchanged():
    p = pod()
    for kw in (
        {"operation": "UPDATE", "old": p},
        {"operation": "DELETE"},
        {"sub": "status"},
        {"sub": "ephemeralcontainers", "operation": "UPDATE", "old": p},
    ):
        resp, out = admit(p, **kw)
        assert resp["allowed"] and "patch" not in resp and out == p


def test_dry_run_gets_the_same_mutation():
    plain = mutate(review(pod()), CONFIG)["response"]
    dry = mutate(review(pod(), dry_run=True), CONFIG)["response"]
    assert dry == plain and "patch" in dry


def test_label_keys_with_slashes_and_tildes_are_escaped():
    p = pod(labels={"a~b/c": "1"})
    resp, _ = admit(p)
    ops = json.loads(base64.b64decode(resp["patch"]))
    assert {"op": "add", "path": "/metadata/labels/fluxqueue.io~1managed", "value": "true"} in ops
    # A tilde in our own key would need ~0: check the escaping function on a key that has both.
    from fluxqueue.webhook.mutate import escape

    assert escape("a~b/c") == "a~0b~1c"


@pytest.mark.parametrize(
    "labels,message",
    [
        (
            {"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "abc"},
            "fluxqueue.io/group-size must be a positive integer, got 'abc'",
        ),
        (
            {"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "-1"},
            "fluxqueue.io/group-size must be a positive integer, got '-1'",
        ),
        ({"fluxqueue.io/duration": "soon"}, "fluxqueue.io/duration must be a number of seconds"),
        ({"fluxqueue.io/exclusive": "maybe"}, 'fluxqueue.io/exclusive must be "true" or "false"'),
    ],
)
def test_invalid_labels_are_rejected_with_a_clear_message(labels, message):
    resp, _ = admit(pod(labels=labels))
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 422
    assert message in resp["status"]["message"]
    assert "patch" not in resp


def test_duration_annotations_are_validated_too():
    resp, _ = admit(pod(annotations={"fluxqueue.io/duration": "-30"}))
    assert resp["allowed"] is False and "must be" in resp["status"]["message"]


def test_group_member_pods_are_gated():
    resp, out = admit(pod(labels={"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "3"}))
    assert resp["allowed"] and out["spec"]["schedulingGates"] == [GATE]


# --- Jobs ------------------------------------------------------------------------------------------------------


def test_job_is_suspended_and_its_template_pointed_at_fluxqueue():
    resp, out = admit(job(labels={"team": "a"}, template_labels={"app": "x"}), kind="Job")
    assert resp["allowed"]
    assert out["spec"]["suspend"] is True
    assert out["metadata"]["labels"] == {"team": "a", MANAGED: "true"}
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "x", MANAGED: "true"}
    assert out["spec"]["template"]["spec"]["schedulerName"] == "fluxqueue"
    assert "annotations" not in out["metadata"]
    # No gate on the template: the controller binds the Job's pods directly.
    assert "schedulingGates" not in out["spec"]["template"]["spec"]


def test_job_without_template_metadata_or_suspend_field():
    j = job()
    del j["spec"]["template"]["metadata"]
    del j["spec"]["suspend"]
    del j["spec"]["template"]["spec"]["schedulerName"]
    _, out = admit(j, kind="Job")
    assert out["spec"]["suspend"] is True
    assert out["spec"]["template"]["metadata"] == {"labels": {MANAGED: "true"}}
    assert out["spec"]["template"]["spec"]["schedulerName"] == "fluxqueue"


def test_a_job_created_suspended_stays_the_users_until_unsuspended():
    created = job(suspend=True)
    resp, out = admit(created, kind="Job")
    assert out["spec"]["suspend"] is True
    assert out["metadata"]["annotations"] == {"fluxqueue.io/user-suspended": "true"}
    assert any("unsuspend" in w for w in resp["warnings"])
    # The user unsuspends: the webhook keeps it suspended and drops the mark, which queues it.
    unsuspended = copy.deepcopy(out)
    unsuspended["spec"]["suspend"] = False
    resp, after = admit(unsuspended, kind="Job", operation="UPDATE", old=out)
    assert resp["allowed"] and after["spec"]["suspend"] is True
    assert after["metadata"]["annotations"] == {}
    assert any("queued" in w for w in resp["warnings"])
    # The controller's own unsuspend (no user mark) goes through untouched.
    released = copy.deepcopy(after)
    released["spec"]["suspend"] = False
    released["metadata"]["annotations"]["fluxqueue.io/nodes"] = "n1,n2"
    resp, final = admit(released, kind="Job", operation="UPDATE", old=after)
    assert "patch" not in resp and final["spec"]["suspend"] is False


def test_strict_unsuspend_requires_the_placement_annotation():
    strict = WebhookConfig(strict_unsuspend=True)
    _, queued = admit(job(), kind="Job")
    sneaky = copy.deepcopy(queued)
    sneaky["spec"]["suspend"] = False
    out = mutate(review(sneaky, kind="Job", operation="UPDATE", old=queued), strict)["response"]
    assert apply_patch(sneaky, json.loads(base64.b64decode(out["patch"])))["spec"]["suspend"] is True
    placed = copy.deepcopy(sneaky)
    placed["metadata"]["annotations"] = {"fluxqueue.io/nodes": "n1"}
    out = mutate(review(placed, kind="Job", operation="UPDATE", old=queued), strict)["response"]
    assert "patch" not in out
    # Without strict mode the same unsuspend passes (the default, so the controller needs no annotation).
    resp, _ = admit(sneaky, kind="Job", operation="UPDATE", old=queued)
    assert "patch" not in resp


def test_updates_of_jobs_we_did_not_mutate_are_no_ops():
    old = job(suspend=True)
    new = job(suspend=False)
    resp, out = admit(new, kind="Job", operation="UPDATE", old=old)
    assert resp["allowed"] and "patch" not in resp and out == new


@pytest.mark.parametrize(
    "case,obj,namespace",
    [
        ("system namespace", job(), "kube-system"),
        ("skip on the Job", job(labels={"fluxqueue.io/skip": "true"}), "default"),
        ("skip on the template", job(template_labels={"fluxqueue.io/skip": "true"}), "default"),
        ("another scheduler", job(scheduler="volcano"), "default"),
        ("managed by another controller", job(managedBy="kueue.x-k8s.io/multikueue"), "default"),
    ],
)
def test_jobs_fluxqueue_never_touches(case, obj, namespace):
    resp, out = admit(obj, kind="Job", namespace=namespace)
    assert resp["allowed"] and "patch" not in resp and out == obj, case


def test_job_with_group_smaller_than_parallelism_is_rejected():
    resp, _ = admit(
        job(parallelism=4, labels={"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "2"}),
        kind="Job",
    )
    assert resp["allowed"] is False
    assert (
        "fluxqueue.io/group-size (2) is smaller than the Job's parallelism (4)" in resp["status"]["message"]
    )


def test_job_with_parallelism_zero_is_admitted_and_suspended():
    resp, out = admit(job(parallelism=0), kind="Job")
    assert resp["allowed"] and out["spec"]["suspend"] is True


# --- robustness -------------------------------------------------------------------------------------------------


def test_unexpected_input_is_allowed_unchanged_never_raised():
    broken = review(pod())
    broken["request"]["object"]["metadata"] = ["not", "a", "map"]
    out = mutate(broken, CONFIG)
    assert out["response"] == {"uid": "uid-1", "allowed": True}
    assert mutate({}, CONFIG)["response"]["allowed"] is True
    assert mutate({"request": "junk"}, CONFIG)["response"]["allowed"] is True


def test_other_kinds_are_allowed_unchanged():
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}
    r = review(obj)
    r["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert mutate(r, CONFIG)["response"] == {"uid": "uid-1", "allowed": True}


def test_a_skip_label_that_is_not_true_or_false_is_refused():
    resp, _ = admit(pod(labels={"fluxqueue.io/skip": "yes"}))
    assert (
        resp["allowed"] is False
        and 'fluxqueue.io/skip must be "true" or "false"' in resp["status"]["message"]
    )
