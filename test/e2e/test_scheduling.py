"""Issue 5, "Done when": each behaviour end to end, submitted with the real kubectl.

Cluster (conftest): 4 nodes x 4 cpus x 16Gi unless a test says otherwise; time scale 20.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from support.credentials import ExecPlugin

from fluxqueue.controller.reactor import GROUP_STATUS_DELAY
from fluxqueue.kube import names
from fluxqueue.sim.apiserver import resources as R

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def job(
    name: str,
    *,
    parallelism: int = 1,
    cpu: str = "1",
    runtime: str = "2s",
    duration: int = 60,
    priority_class: str | None = None,
    extra_labels: dict | None = None,
    node_selector: dict | None = None,
    tolerations: list | None = None,
    completions: int | None = None,
    indexed: bool = False,
) -> str:
    labels = {names.LABEL_DURATION: str(duration), **(extra_labels or {})}
    label_lines = "\n".join(f'    {k}: "{v}"' for k, v in labels.items())
    spec_extra = ""
    if priority_class:
        spec_extra += f"      priorityClassName: {priority_class}\n"
    if node_selector:
        spec_extra += "      nodeSelector:\n" + "".join(
            f'        {k}: "{v}"\n' for k, v in node_selector.items()
        )
    if tolerations:
        spec_extra += "      tolerations:\n" + "".join(
            f'      - {{key: "{t["key"]}", operator: "Exists", effect: "{t["effect"]}"}}\n'
            for t in tolerations
        )
    return f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: default
  labels:
{label_lines}
spec:
  parallelism: {parallelism}
  completions: {completions or parallelism}
  completionMode: {"Indexed" if indexed else "NonIndexed"}
  backoffLimit: 0
  template:
    metadata:
      annotations:
        {names.SIM_RUNTIME}: "{runtime}"
    spec:
      restartPolicy: Never
{spec_extra}      containers:
      - name: work
        image: busybox
        resources:
          requests:
            cpu: "{cpu}"
            memory: 1Gi
"""


def pod(name: str, *, cpu: str = "1", runtime: str = "2s", labels: dict | None = None) -> str:
    label_lines = "".join(f'    {k}: "{v}"\n' for k, v in (labels or {}).items())
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels:
    app: test
{label_lines}  annotations:
    {names.SIM_RUNTIME}: "{runtime}"
spec:
  restartPolicy: Never
  containers:
  - name: work
    image: busybox
    resources:
      requests:
        cpu: "{cpu}"
        memory: 1Gi
"""


async def test_a_bare_pod_is_gated_queued_bound_and_released(system):
    await system.apply(pod("solo", runtime="1s"))
    fj = await system.wait_phase("solo-pod", ("Scheduled", "Running", "Succeeded"))
    assert fj["spec"]["size"] == 1
    done = await system.wait_phase("solo-pod", "Succeeded")
    assert done["status"]["nodes"] and done["status"]["fluxionJobID"] >= 1
    p = await system.api.client.get(R.PODS, "solo", namespace="default")
    assert p["spec"]["nodeName"] == done["status"]["nodes"][0]
    assert not p["spec"].get("schedulingGates")
    events = {e["reason"]: e["message"] for e in await system.events("solo-pod")}
    # Its FluxJob tells how it ended; "Queued" is for units that wait.
    assert "Succeeded" in events and "Queued" not in events
    # The pod itself is told where it went, in kube-scheduler's words, where `kubectl describe pod` shows it.
    described = await system.kubectl("describe", "pod", "solo")
    node = done["status"]["nodes"][0]
    assert "Scheduled  " in described and f"Successfully assigned default/solo to {node}" in described
    printed = await system.kubectl("get", "fj", "solo-pod")
    assert "Succeeded" in printed and "PHASE" in printed


async def test_a_job_of_parallelism_4_is_placed_as_one_gang(system):
    await system.apply(job("gang", parallelism=4, cpu="3", runtime="2s"))
    fj = await system.wait_phase("gang-job", ("Scheduled", "Running"))
    nodes = fj["status"]["nodes"]
    # 3 cpus per pod on 4-cpu nodes: one pod per node, all four nodes at once.
    assert len(nodes) == 4

    async def all_bound():
        pods = await system.pods(selector="job-name=gang")
        return len(pods) == 4 and all(p["spec"].get("nodeName") for p in pods)

    await system.wait_for(all_bound, 15, "the four pods bound")
    pods = await system.pods(selector="job-name=gang")
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes)
    await system.wait_phase("gang-job", "Succeeded")


async def test_a_pod_group_of_three_waits_for_its_third_member(system):
    group = {names.LABEL_GROUP_NAME: "trio", names.LABEL_GROUP_SIZE: "3"}
    await system.apply(pod("trio-0", labels=group) + "---" + pod("trio-1", labels=group))
    await system.wait_phase("trio-group", "Waiting")
    # Passes and a sweep that all saw the group as it is place nothing of it (an allocation is persisted
    # before any pod is touched).
    await system.passes(2)
    await system.sweeps(1)
    row = await system.unit_row("trio-group")
    assert row["state"] == "Waiting" and row["fluxion_jobid"] is None
    assert all(
        not p["spec"].get("nodeName") for p in await system.pods(selector="fluxqueue.io/group-name=trio")
    )
    assert (await system.fluxjob("trio-group"))["status"]["phase"] == "Waiting"
    # One Event when its waiting is first shown, with the count the status shows.
    waiting = [e for e in await system.events("trio-group") if e["reason"] == "Waiting"]
    assert [e["message"] for e in waiting] == ["waiting for group members: 2 of 3 present"]
    await system.apply(pod("trio-2", labels=group))
    await system.wait_phase("trio-group", ("Scheduled", "Running", "Succeeded"))
    # A group complete within the burst window is never told it waits.
    await system.apply(
        "---".join(
            pod(f"duo-{i}", labels={names.LABEL_GROUP_NAME: "duo", names.LABEL_GROUP_SIZE: "2"})
            for i in (0, 1)
        )
    )
    await system.wait_phase("duo-group", ("Scheduled", "Running", "Succeeded"))
    # The waiting status deferred when its first member arrived was set before the group completed: a sleep
    # on the controller's own event loop as long as its delay ends after that timer would have fired, and
    # the passes after it let a write it began land.
    await asyncio.sleep(GROUP_STATUS_DELAY)
    await system.passes(2)
    assert not [e for e in await system.events("duo-group") if e["reason"] == "Waiting"]
    assert await system.phase("duo-group") != "Waiting"

    async def all_bound():
        pods = await system.pods(selector="fluxqueue.io/group-name=trio")
        return len(pods) == 3 and all(p["spec"].get("nodeName") for p in pods)

    await system.wait_for(all_bound, 10, "three members bound")
    await system.wait_phase("trio-group", "Succeeded")


async def test_a_pod_group_that_never_fills_fails_after_its_timeout_and_frees_its_pods(system):
    await system.restart_controller(group_timeout=1.0)
    group = {names.LABEL_GROUP_NAME: "lonely", names.LABEL_GROUP_SIZE: "3"}
    await system.apply(pod("lonely-0", labels=group))
    await system.wait_phase("lonely-group", "Waiting")

    async def failed():
        row = await system.unit_row("lonely-group")
        return row is not None and row["state"] == "Failed"

    await system.wait_for(failed, 15, "the group to fail")
    assert "did not reach 3 members" in (await system.unit_row("lonely-group"))["reason"]

    async def pods_gone():
        return await system.pods(selector="fluxqueue.io/group-name=lonely") == []

    # Deleted rather than left gated; the FluxJob goes with its last owner, the Events stay.
    await system.wait_for(pods_gone, 10, "the member deleted")
    assert any(e["reason"] == "GroupTimeout" for e in await system.events("lonely-0"))


async def test_cordoned_nodes_take_no_new_work(system):
    await system.kubectl("cordon", "node-000")
    await system.kubectl("cordon", "node-001")
    await system.apply(job("spread", parallelism=4, cpu="2", runtime="1s"))
    await system.wait_phase("spread-job", "Succeeded")
    nodes = {p["spec"]["nodeName"] for p in await system.pods(selector="job-name=spread")}
    assert nodes and nodes <= {"node-002", "node-003"}


async def test_easy_backfill_lets_a_short_small_job_run_ahead_without_delaying_the_head(system):
    # A long job holds two of the four nodes.
    await system.apply(job("first", parallelism=2, cpu="4", runtime="60s", duration=60))
    await system.wait_phase("first-job", ("Scheduled", "Running"))
    # The head needs every node: it must wait for "first" and gets a reservation.
    await system.apply(job("head", parallelism=4, cpu="4", runtime="10s", duration=10))
    reserved = await system.wait_phase("head-job", "Reserved")
    assert "reserved to start at" in reserved["status"]["reason"]
    # A short small job fits in the gap and ends before "first": backfilled at once.
    await system.apply(job("short", parallelism=1, cpu="4", runtime="10s", duration=10))
    # A long small job would delay the head: it must wait.
    await system.apply(job("long", parallelism=1, cpu="4", runtime="10s", duration=600))
    await system.wait_phase("short-job", ("Scheduled", "Running", "Succeeded"))

    def long_waits_for_the_head():
        # Any version: it waits only while "first" runs (3 s here).
        return any(
            (v.get("status") or {}).get("phase") == "Queued"
            and "delaying default/head-job" in (v.get("status") or {}).get("reason", "")
            for v in system.history.of("long-job")
        )

    await system.wait_for(long_waits_for_the_head, 10, "the long job to wait behind the head's reservation")
    # A unit that waits is told so once, when its waiting is first shown; then "Scheduled" says for how long.
    assert "Queued" in {e["reason"] for e in await system.events("long-job")}
    for name in ("first", "head", "short", "long"):
        await system.wait_phase(f"{name}-job", "Succeeded", within=40)
    assert await system.scheduled_order() == ["first-job", "short-job", "head-job", "long-job"]
    scheduled = [e["message"] for e in await system.events("long-job") if e["reason"] == "Scheduled"]
    assert scheduled and "s in the queue" in scheduled[0]


async def test_contention_starts_waiting_jobs_in_priority_then_fifo_order_as_resources_free(system):
    await system.kubectl("create", "priorityclass", "urgent", "--value=1000", "--description=test")
    # The blocker holds every core until the test deletes it, so all three are queued behind it however
    # slowly a busy machine submits them (a blocker that ends on its own could end before "high" arrives).
    await system.apply(job("blocker", parallelism=4, cpu="4", runtime="1h", duration=3600))
    await system.wait_phase("blocker-job", ("Scheduled", "Running"))
    for name in ("low1", "low2"):
        await system.apply(job(name, parallelism=4, cpu="4", runtime="4s", duration=4))
        await system.wait_phase(f"{name}-job", ("Queued", "Reserved"))
    await system.apply(job("high", parallelism=4, cpu="4", runtime="4s", duration=4, priority_class="urgent"))
    queued = await system.wait_phase("high-job", ("Queued", "Reserved"))
    assert queued["spec"]["priority"] == 1000
    assert await system.scheduled_order() == ["blocker-job"]
    await system.kubectl("delete", "job", "blocker", "--wait=false")
    for name in ("high", "low1", "low2"):
        await system.wait_phase(f"{name}-job", "Succeeded", within=40)
    assert await system.scheduled_order() == ["blocker-job", "high-job", "low1-job", "low2-job"]
    table = await system.kubectl("get", "fj")
    assert "PHASE" in table and "high-job" in table


async def test_a_release_during_a_pass_does_not_let_a_later_job_backfill_ahead_of_the_reserved_head(system):
    # The race the contention test met on a busy machine, made certain: the blocker's allocation is given
    # back exactly while a pass sits between the head's reservation and the next unit's match. Were that
    # release applied at once, "later" (the same shape, 4 s long) would backfill into the freed nodes ahead
    # of "head", which reserved them at the blocker's end.
    await system.apply(job("blocker", parallelism=4, cpu="4", runtime="1h", duration=3600))
    await system.wait_phase("blocker-job", ("Scheduled", "Running"))
    await system.apply(job("head", parallelism=4, cpu="4", runtime="4s", duration=4))
    await system.wait_phase("head-job", "Reserved")
    await system.apply(job("later", parallelism=4, cpu="4", runtime="4s", duration=4))
    await system.wait_phase("later-job", ("Queued", "Reserved"))
    head_id = (await system.unit_row("head-job"))["id"]
    blocker_id = (await system.unit_row("blocker-job"))["id"]
    controller = system.controller
    end, store = controller.scheduler.end, controller.store
    give_back, reserve = end.give_back, store.reserve
    in_pass, released = asyncio.Event(), asyncio.Event()

    async def reserve_then_wait_for_the_release(unit_id, reason):
        await reserve(unit_id, reason)
        if unit_id == head_id and not released.is_set():
            in_pass.set()
            await asyncio.wait_for(released.wait(), 30)

    async def give_back_inside_a_pass(unit, got):
        if unit.id == blocker_id:
            await asyncio.wait_for(in_pass.wait(), 30)
        await give_back(unit, got)
        if unit.id == blocker_id:
            released.set()

    store.reserve = reserve_then_wait_for_the_release
    end.give_back = give_back_inside_a_pass
    await system.kubectl("delete", "job", "blocker", "--wait=false")
    for name in ("head", "later"):
        await system.wait_phase(f"{name}-job", "Succeeded", within=40)
    assert released.is_set()
    assert await system.scheduled_order() == ["blocker-job", "head-job", "later-job"]


async def test_an_unsatisfiable_job_is_reported_and_does_not_block_the_queue(system):
    await system.apply(job("huge", parallelism=1, cpu="64"))
    fj = await system.wait_phase("huge-job", "Unsatisfiable")
    assert "largest" in fj["status"]["reason"] and "64" in fj["status"]["reason"]
    events = await system.events("huge-job")
    assert any(e["reason"] == "Unsatisfiable" and e["type"] == "Warning" for e in events)
    await system.apply(job("small", parallelism=1, cpu="1", runtime="1s"))
    await system.wait_phase("small-job", "Succeeded")
    assert await system.pods(selector="job-name=huge") == []


async def test_deleting_a_queued_job_cancels_it_and_it_never_runs(system):
    # The blocker runs until it is deleted: "doomed" is queued behind it however slow the machine is.
    await system.apply(job("blocker", parallelism=4, cpu="4", runtime="1h", duration=3600))
    await system.wait_phase("blocker-job", ("Scheduled", "Running"))
    await system.apply(job("doomed", parallelism=2, cpu="4", runtime="2s"))
    await system.wait_phase("doomed-job", ("Queued", "Reserved"))
    await system.kubectl("delete", "job", "doomed", "--wait=false")

    async def in_state(name, *states):
        row = await system.unit_row(name)
        return row is not None and row["state"] in states

    await system.wait_for(lambda: in_state("doomed-job", "Cancelled"), 10, "the queued unit cancelled")
    await system.kubectl("delete", "job", "blocker", "--wait=false")
    await system.wait_for(
        lambda: in_state("blocker-job", "Cancelled"), 20, "the blocker ended, its nodes free"
    )
    # Passes that saw the blocker's nodes free place nothing of the cancelled unit.
    await system.passes(2)
    row = await system.unit_row("doomed-job")
    assert row["state"] == "Cancelled" and row["fluxion_jobid"] is None
    assert await system.pods(selector="job-name=doomed") == []


async def test_node_selector_and_taints_are_respected(system):
    await system.kubectl("label", "node", "node-002", "disk=ssd")
    await system.cluster.taint("node-000", "dedicated", "gpu", "NoSchedule")
    await system.cluster.taint("node-001", "dedicated", "gpu", "NoSchedule")
    await system.apply(job("picky", parallelism=2, cpu="1", node_selector={"disk": "ssd"}))
    await system.apply(job("plain", parallelism=4, cpu="1"))
    await system.apply(
        job("tolerant", parallelism=2, cpu="4", tolerations=[{"key": "dedicated", "effect": "NoSchedule"}])
    )
    for name in ("picky", "plain", "tolerant"):
        await system.wait_phase(f"{name}-job", "Succeeded", within=30)
    nodes = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in await system.pods()}
    picky = [n for p, n in nodes.items() if p.startswith("picky-")]
    plain = [n for p, n in nodes.items() if p.startswith("plain-")]
    assert picky and set(picky) == {"node-002"}
    assert plain and not set(plain) & {"node-000", "node-001"}


async def test_controller_and_fluxion_killed_mid_pass_lose_nothing_and_place_nothing_twice(system):
    from fluxqueue.fluxion.server import FluxionServer

    # The same identity after a restart, as a StatefulSet pod keeps its name: it takes its own lease back
    # at once instead of waiting for it to expire.
    await system.kill_controller()
    await system.start_controller(identity="controller-0")
    for i in range(6):
        await system.apply(job(f"batch{i}", parallelism=2, cpu="3", runtime="4s", duration=4))
    # Crash while passes, releases and bindings are in flight, three times; the second time Fluxion goes
    # down too, so its allocations must come back from the database, not from its memory.
    for round_, pause in enumerate((0.15, 0.4, 0.25)):
        await asyncio.sleep(pause)
        await system.kill_controller()
        if round_ == 1:
            await system.fluxion.stop()
            system.fluxion = FluxionServer(host="127.0.0.1", port=0)
            await system.fluxion.start()
        if round_ == 2:
            # A pod admitted (gated) by another webhook replica while no loop ran: the sweep adopts it.
            await system.api.client.create(
                R.PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": "orphan",
                        "namespace": "default",
                        "annotations": {names.SIM_RUNTIME: "1s"},
                    },
                    "spec": {
                        "schedulerName": names.SCHEDULER_NAME,
                        "schedulingGates": [{"name": names.SCHEDULING_GATE}],
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}}],
                    },
                },
                namespace="default",
            )
        await system.start_controller(identity="controller-0", fluxion_address=system.fluxion.address)
    await system.wait_phase("orphan-pod", "Succeeded", within=20)
    # New work is queued behind what the database still holds.
    await system.apply(job("late", parallelism=1, cpu="1", runtime="1s"))
    for i in range(6):
        await system.wait_phase(f"batch{i}-job", "Succeeded", within=40)
    await system.wait_phase("late-job", "Succeeded", within=20)
    for i in range(6):
        pods = await system.pods(selector=f"job-name=batch{i}")
        assert len(pods) == 2, f"batch{i} has {len(pods)} pods"


async def test_a_second_replica_waits_and_takes_over_when_the_leader_dies(system):
    from fluxqueue.controller.app import Controller

    settings = system.settings(identity="standby", webhook_port=None)
    standby = Controller(settings)
    await standby.start()
    try:
        # The lease is held: one scheduling loop at a time. Refused again and again over longer than a lease
        # lasts, the standby has seen the leader renew it.
        started = time.monotonic()
        await system.wait_for(
            lambda: standby.elector.refused >= 3 and time.monotonic() - started > settings.lease_duration,
            30,
            "the standby refused the lease for longer than it lasts",
        )
        assert not standby.leading.is_set()
        await system.apply(job("before", parallelism=2, cpu="1", runtime="1s"))
        await system.wait_phase("before-job", "Succeeded")
        # The leader dies without giving the lease up; the standby takes over once it expires (2 s here).
        # The webhook keeps being served by a restarted replica that is not the leader.
        await system.kill_controller()
        await asyncio.wait_for(standby.leading.wait(), 10)
        await system.start_controller(identity="webhook-only", wait_leading=False)
        await system.apply(job("after", parallelism=2, cpu="1", runtime="1s"))
        await system.wait_phase("after-job", "Succeeded")
        assert not system.controller.leading.is_set()
    finally:
        await standby.stop()


async def test_a_pod_placed_by_someone_else_is_foreign_load_the_graph_accounts_for(system):
    # As if it slipped past a down webhook and another scheduler bound it: 3 of node-000's 4 cpus, for 3 s.
    await system.api.client.create(
        R.PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "foreign",
                "namespace": "default",
                "labels": {names.LABEL_SKIP: "true"},
                "annotations": {names.SIM_RUNTIME: "60s"},
            },
            "spec": {
                "nodeName": "node-000",
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "3"}}}],
            },
        },
        namespace="default",
    )
    # Eight 2-cpu pods need every cpu of the cluster: they wait (not Unsatisfiable) until the foreign pod
    # ends, and the kubelets never see an over-committed node (the shared invariant check).
    await system.apply(job("wide", parallelism=8, cpu="2", runtime="1s"))
    waiting = await system.wait_phase("wide-job", ("Queued", "Reserved"))
    assert "waiting" in waiting["status"]["reason"] or "reserved" in waiting["status"]["reason"]
    done = await system.wait_phase("wide-job", "Succeeded", within=30)
    foreign = await system.api.client.get(R.PODS, "foreign", namespace="default")
    assert foreign["status"]["phase"] == "Succeeded"
    assert done["status"]["scheduledAt"] >= waiting["status"]["queuedAt"]


async def test_an_indexed_job_binds_by_completion_index_and_reuses_its_slots_for_later_completions(system):
    # Three pods at a time (one 3-cpu pod per node), six completions: later pods take the freed slots.
    await system.apply(job("idx", parallelism=3, completions=6, indexed=True, cpu="3", runtime="1s"))
    fj = await system.wait_phase("idx-job", ("Scheduled", "Running"))
    nodes = sorted(fj["status"]["nodes"])
    assert len(nodes) == 3

    async def first_wave_bound():
        pods = await system.pods(selector="job-name=idx")
        return len([p for p in pods if p["spec"].get("nodeName")]) >= 3

    await system.wait_for(first_wave_bound, 10, "the first three pods bound")
    first = sorted(
        (int(p["metadata"]["annotations"][names.ANNOTATION_JOB_COMPLETION_INDEX]), p["spec"]["nodeName"])
        for p in await system.pods(selector="job-name=idx")
        if p["spec"].get("nodeName")
    )[:3]
    assert first == [(0, nodes[0]), (1, nodes[1]), (2, nodes[2])]
    await system.wait_phase("idx-job", "Succeeded", within=30)
    pods = await system.pods(selector="job-name=idx")
    assert len(pods) >= 6 and {p["spec"]["nodeName"] for p in pods} <= set(nodes)


async def test_an_unsatisfiable_job_is_judged_again_when_a_bigger_node_joins(system):
    await system.apply(job("big", parallelism=1, cpu="12", runtime="1s"))
    await system.wait_phase("big-job", "Unsatisfiable")
    await system.cluster.add_node("node-big", cpus=16, memory="64Gi")
    done = await system.wait_phase("big-job", "Succeeded", within=20)
    assert done["status"]["nodes"] == ["node-big"]


async def test_a_unit_judged_before_its_fluxjob_exists_still_shows_its_status(system):
    # A unit is queued before its FluxJob is created: with the API server slow to create FluxJobs, the pass
    # judges this pod unsatisfiable (a terminal status, never written again) before its FluxJob exists. The
    # status that found no FluxJob is written once the FluxJob is there.
    engine = system.api.engine
    create = engine.create

    async def slow_fluxjob_creates(key, *args, **kwargs):
        plural = key[2] if isinstance(key, tuple) else getattr(key, "plural", "")
        if plural == "fluxjobs":
            await asyncio.sleep(2.0)
        return await create(key, *args, **kwargs)

    engine.create = slow_fluxjob_creates
    try:
        await system.apply(pod("too-big", cpu="64"))
        fj = await system.wait_phase("too-big-pod", "Unsatisfiable", within=20)
    finally:
        engine.create = create
    assert "64" in fj["status"]["reason"]
    # Its Event was held until the FluxJob existed, so it is attached to it (by uid) and describe shows it.
    await system.wait_for(
        lambda: fluxjob_events_described(system, "too-big-pod", "Unsatisfiable"),
        10,
        "the Event on the FluxJob",
    )


async def fluxjob_events_described(system, name: str, reason: str) -> bool:
    """Whether ``kubectl describe fluxjob`` lists an Event with ``reason`` (describe selects Events by the
    object's uid: an Event naming the FluxJob without it is not shown)."""
    out = await system.kubectl("describe", "fluxjob", name)
    events = out.split("\nEvents:", 1)[1] if "\nEvents:" in out else ""
    return any(line.split()[1:2] == [reason] for line in events.splitlines() if line.strip())


async def test_kubectl_describe_fluxjob_shows_its_events(system):
    await system.apply(job("described", runtime="1s"))
    await system.wait_phase("described-job", "Succeeded", within=30)
    await system.wait_for(
        lambda: fluxjob_events_described(system, "described-job", "Succeeded"), 10, "the Succeeded Event"
    )
    assert await fluxjob_events_described(system, "described-job", "Scheduled")
    fj = await system.fluxjob("described-job")
    mine = [e for e in await system.events("described-job") if e["involvedObject"]["kind"] == "FluxJob"]
    assert mine and all(e["involvedObject"].get("uid") == fj["metadata"]["uid"] for e in mine)


async def test_reloading_fluxion_again_and_again_replays_every_allocation(system):
    # A reload (Init + replay of what the database holds) happens on every time resync: with the graph
    # unchanged, each must give Fluxion back every allocation, not only the first one.
    await system.apply(job("fill", parallelism=4, cpu="3", runtime="60s", duration=120))
    await system.wait_phase("fill-job", "Running")
    graphs = system.controller.scheduler.graphs
    for _ in range(3):
        loads = graphs.inits
        graphs.loaded_fingerprint = None
        system.controller.ctx.wake("test")
        await system.wait_for(
            lambda loads=loads: graphs.inits > loads and graphs.loaded_fingerprint, 10, "a reload"
        )
    assert graphs.replay_failures == 0
    assert len(system.fluxion.matcher.jobs) == 1  # the Job's one allocation, under its id
    row = await system.unit_row("fill-job")
    assert row["fluxion_jobid"] in system.fluxion.matcher.jobs


async def test_a_controller_whose_kubeconfig_runs_an_exec_plugin_works_on_when_its_token_is_revoked(
    system, tmp_path
):
    # As EKS, GKE and AKS kubeconfigs do: the user entry runs a credential plugin.
    plugin = ExecPlugin(system.api, tmp_path)
    await system.restart_controller(kubeconfig=str(plugin.kubeconfig))
    await system.apply(pod("before", runtime="1s"))
    await system.wait_phase("before-pod", "Succeeded")
    runs = plugin.runs
    assert runs >= 1
    # The old token is refused from now on (kubectl gets the new one too); the plugin hands out the new one.
    system.api.token = "rotated-" + system.api.token
    plugin.hand_out(system.api.token)
    system.api.write_kubeconfig(system.kubeconfig)
    await system.apply(pod("after", runtime="1s"))
    await system.wait_phase("after-pod", "Succeeded")
    assert plugin.runs > runs
