"""Issue 16, tenant queues, end to end with the real kubectl: borrowing an idle cluster, a hard limit, weights
dividing what is borrowed, an unknown queue said in words, and the queue's own status.

Cluster (conftest): 4 nodes x 4 cpus x 16Gi unless a test says otherwise; time scale 20 (a 40 s runtime is two
wall seconds).
"""

from __future__ import annotations

import asyncpg
import pytest

from fluxqueue.kube import names
from fluxqueue.queues import QUEUES_API
from fluxqueue.sim.cluster import ClusterSpec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def namespace(name: str) -> str:
    return f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {name}
---
"""


def queue(name: str, namespaces: list[str], quota: dict, limit: dict | None = None, weight: int = 1) -> str:
    def amounts(d: dict) -> str:
        return "{" + ", ".join(f'{k}: "{v}"' for k, v in d.items()) + "}"

    limit_line = f"\n  limit: {amounts(limit)}" if limit else ""
    return f"""
apiVersion: fluxqueue.io/v1alpha1
kind: Queue
metadata:
  name: {name}
spec:
  namespaces: [{", ".join(namespaces)}]
  quota: {amounts(quota)}{limit_line}
  weight: {weight}
---
"""


def job(name: str, ns: str, *, cpu: str = "1", runtime: str = "40s", queue_label: str | None = None) -> str:
    label = f'\n    {names.LABEL_QUEUE}: "{queue_label}"' if queue_label else ""
    return f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: {ns}
  labels:
    {names.LABEL_DURATION}: "60"{label}
spec:
  parallelism: 1
  completions: 1
  backoffLimit: 0
  template:
    metadata:
      annotations:
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
---
"""


def phase_of(system, name: str, ns: str) -> str | None:
    versions = system.history.of(f"{name}-job", ns)
    return ((versions[-1].get("status") or {}).get("phase")) if versions else None


def ever(system, name: str, ns: str, phases: tuple[str, ...]) -> bool:
    return any((v.get("status") or {}).get("phase") in phases for v in system.history.of(f"{name}-job", ns))


async def holding(system, ns: str) -> int:
    """Units of namespace ``ns`` holding an allocation now."""
    conn = await asyncpg.connect(system.dsn)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM fluxqueue.units u JOIN fluxqueue.allocations a ON a.unit_id = u.id "
            "WHERE a.released_at IS NULL AND u.namespace = $1",
            ns,
        )
    finally:
        await conn.close()


async def held_by(system, ns: str) -> int:
    return await holding(system, ns)


async def queue_status(system, name: str) -> dict:
    return (await system.api.client.get(QUEUES_API, name)).get("status") or {}


async def test_a_queue_borrows_an_idle_cluster_beyond_its_quota(system):
    await system.apply(namespace("team-a") + namespace("team-b"))
    await system.apply(queue("team-a", ["team-a"], {"cpu": 4}) + queue("team-b", ["team-b"], {"cpu": 12}))
    await system.apply("".join(job(f"a{i}", "team-a", cpu="4", runtime="200s") for i in range(4)))
    # 16 CPUs asked with a quota of 4: the other 12 are borrowed from team-b, which is idle.
    await system.wait_for(lambda: _at_least(system, "team-a", 4), 30, "all four of team-a holding")

    async def status_shows_it() -> bool:
        s = await queue_status(system, "team-a")
        return s.get("runningUnits") == 4 and s.get("usage", {}).get("cpu") == "16"

    await system.wait_for(status_shows_it, 20, "team-a's status to show its usage")
    s = await queue_status(system, "team-a")
    assert s["usageSummary"] == "cpu 16/4, memory 4Gi" and float(s["share"]) > 0, s
    printed = await system.kubectl("get", "queues")
    assert "team-a" in printed and "SHARE" in printed and "cpu 16/4" in printed, printed


async def _at_least(system, ns: str, n: int) -> bool:
    return await holding(system, ns) >= n


async def test_a_hard_limit_is_never_exceeded_even_on_an_idle_cluster(system):
    await system.apply(namespace("team-a"))
    await system.apply(queue("team-a", ["team-a"], {"cpu": 4}, limit={"cpu": 8}))
    await system.apply("".join(job(f"a{i}", "team-a", cpu="4", runtime="100s") for i in range(4)))
    await system.wait_for(lambda: _at_least(system, "team-a", 2), 30, "two of team-a holding")
    await system.passes(3)
    assert await holding(system, "team-a") == 2  # 8 CPUs: the limit, though 8 more are idle
    waiting = [n for n in ("a0", "a1", "a2", "a3") if not ever(system, n, "team-a", ("Scheduled", "Running"))]
    assert len(waiting) == 2
    fj = await system.fluxjob(f"{waiting[0]}-job", "team-a")
    assert fj["status"]["reason"] == (
        "waiting within the limit of team-a: needs 4 CPUs, 0 of 8 left under its limit"
    ), fj["status"]
    # All four finish, two at a time (the shared invariants check the limit at every instant).
    for n in ("a0", "a1", "a2", "a3"):
        await system.wait_for(lambda n=n: phase_of(system, n, "team-a") == "Succeeded", 40, f"{n} to succeed")


async def test_a_workload_naming_an_unknown_queue_is_told_and_starts_once_the_queue_exists(system):
    await system.apply(namespace("team-a"))
    await system.apply(queue("team-a", ["team-a"], {"cpu": 4}))
    await system.apply(job("lost", "team-a", queue_label="team-z", runtime="10s"))

    async def told() -> bool:
        fj = await system.fluxjob("lost-job", "team-a")
        return "queue team-z does not exist" in ((fj or {}).get("status") or {}).get("reason", "")

    await system.wait_for(told, 20, "the FluxJob to say its queue does not exist")
    events = {e["reason"]: e["message"] for e in await system.events("lost-job", "team-a")}
    assert "queue team-z does not exist" in events.get("UnknownQueue", ""), events
    assert await holding(system, "team-a") == 0
    await system.apply(queue("team-z", [], {"cpu": 4}))
    await system.wait_for(lambda: phase_of(system, "lost", "team-a") == "Succeeded", 30, "lost to run")


@pytest.mark.parametrize(
    "cluster_spec", [ClusterSpec(nodes=3, cpus=4, memory="16Gi", racks=1, heartbeat_writes_per_s=20)]
)
async def test_weights_divide_what_is_borrowed(system):
    """12 CPUs, both queues without quota, weights 2 and 1: what is lent goes 8 to 4, whatever the order of
    submission (a job of the default queue holds the cluster while both submit)."""
    await system.apply(namespace("heavy") + namespace("light"))
    await system.apply(queue("heavy", ["heavy"], {}, weight=2) + queue("light", ["light"], {}, weight=1))
    await system.apply(
        job("blocker", "default", cpu="4", runtime="60s")
        .replace("parallelism: 1", "parallelism: 3")
        .replace("completions: 1", "completions: 3")
    )
    await system.wait_for(lambda: _at_least(system, "default", 1), 30, "the blocker to hold the cluster")
    # light submits first: order of submission does not decide
    await system.apply("".join(job(f"l{i}", "light", runtime="400s") for i in range(12)))
    await system.apply("".join(job(f"h{i}", "heavy", runtime="400s") for i in range(12)))
    await system.wait_for(
        lambda: phase_of(system, "blocker", "default") == "Succeeded", 40, "the blocker to end"
    )
    await system.wait_for(
        lambda: _total(system, ("heavy", "light"), 12), 30, "the freed cluster to be lent out"
    )
    assert (await holding(system, "heavy"), await holding(system, "light")) == (8, 4)


async def _total(system, namespaces: tuple[str, ...], n: int) -> bool:
    return sum([await holding(system, ns) for ns in namespaces]) >= n


def bare_pod(
    name: str, ns: str, *, cpu: str = "1", gpus: int = 0, runtime: str = "400s", priority: str = ""
) -> str:
    gpu_line = f'\n            nvidia.com/gpu: "{gpus}"' if gpus else ""
    prio = f"\n  priorityClassName: {priority}" if priority else ""
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels:
    {names.LABEL_DURATION}: "600"
  annotations:
    {names.SIM_RUNTIME}: "{runtime}"
spec:
  restartPolicy: Never{prio}
  containers:
  - name: work
    image: busybox
    resources:
      requests:
        cpu: "{cpu}"
        memory: 1Gi{gpu_line}
      limits:
        memory: 1Gi{gpu_line}
---
""".replace("\n            nvidia", "\n        nvidia")


def pod_phase(system, name: str, ns: str) -> str | None:
    versions = system.history.of(f"{name}-pod", ns)
    return ((versions[-1].get("status") or {}).get("phase")) if versions else None


async def preemptions(system) -> list[dict]:
    conn = await asyncpg.connect(system.dsn)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM fluxqueue.preemption_history ORDER BY id")]
    finally:
        await conn.close()


async def test_a_queue_below_its_quota_reclaims_what_another_borrowed(system):
    await system.apply(namespace("team-a") + namespace("team-b"))
    await system.apply(queue("team-a", ["team-a"], {"cpu": 8}) + queue("team-b", ["team-b"], {"cpu": 8}))
    # team-b borrows the idle half of the cluster: 16 CPUs held on a quota of 8
    for i in range(4):
        await system.apply(bare_pod(f"b{i}", "team-b", cpu="4"))
        await system.wait_for(
            lambda i=i: pod_phase(system, f"b{i}", "team-b") == "Running", 20, f"b{i} running"
        )
    await system.apply(bare_pod("a0", "team-a", cpu="4", runtime="20s"))
    await system.wait_for(
        lambda: pod_phase(system, "a0", "team-a") == "Succeeded", 40, "a0 to run and succeed"
    )
    history = await preemptions(system)
    assert [(h["preemptor"], h["victim"], h["cause"]) for h in history] == [
        ("team-a/a0-pod", "team-b/b3-pod", "reclaim")  # one victim, the most recently started
    ], history
    assert history[0]["evicted_at"] is not None
    # The pod is deleted, and its FluxJob with it (owned by the pod); its unit tells why:
    row = await system.unit_row("b3-pod", "team-b")
    assert row["state"] == "Cancelled"
    assert row["reason"] == "preempted to make room for team-a/a0-pod (queue team-a reclaims its quota)"
    events = {e["reason"]: e["message"] for e in await system.events("b3-pod", "team-b")}
    assert "preempted to make room for team-a/a0-pod" in events.get("Preempted", ""), events
    assert "Preempting" in {e["reason"] for e in await system.events("a0-pod", "team-a")}
    assert [pod_phase(system, f"b{i}", "team-b") for i in range(3)] == ["Running"] * 3  # nobody else evicted


async def test_a_higher_priority_unit_preempts_a_lower_one_inside_its_queue(system):
    await system.kubectl("create", "priorityclass", "urgent", "--value=1000", "--description=test")
    await system.apply(namespace("team-a"))
    await system.apply(
        queue("team-a", ["team-a"], {"cpu": 16}).replace(
            "  weight: 1", "  weight: 1\n  preemption: {withinQueue: LowerPriority}"
        )
    )
    for i in range(4):
        await system.apply(bare_pod(f"low{i}", "team-a", cpu="4"))
        await system.wait_for(lambda i=i: pod_phase(system, f"low{i}", "team-a") == "Running", 20, f"low{i}")
    await system.apply(bare_pod("high", "team-a", cpu="4", runtime="20s", priority="urgent"))
    await system.wait_for(lambda: pod_phase(system, "high", "team-a") == "Succeeded", 40, "high to run")
    history = await preemptions(system)
    assert [(h["victim"], h["cause"]) for h in history] == [("team-a/low3-pod", "priority")], history


@pytest.mark.parametrize(
    "cluster_spec", [ClusterSpec(nodes=4, cpus=16, gpus=8, memory="64Gi", racks=1, heartbeat_writes_per_s=20)]
)
async def test_a_preemption_frees_one_whole_node_for_an_8_gpu_pod_not_eight_scattered_gpus(system):
    """kueue#5243: team-b borrows every GPU (a 7-GPU pod and a 1-GPU pod per node, the 1-GPU pods started
    last). Evicting the four newest pods would free four GPUs on four nodes and place nothing; fluxqueue
    evicts the two pods of one node, and the 8-GPU pod runs there."""
    await system.apply(namespace("team-a") + namespace("team-b"))
    await system.apply(
        queue("team-a", ["team-a"], {"nvidia.com/gpu": 8})
        + queue("team-b", ["team-b"], {"nvidia.com/gpu": 8})
    )
    for i in range(4):
        await system.apply(bare_pod(f"big{i}", "team-b", gpus=7))
        await system.wait_for(lambda i=i: pod_phase(system, f"big{i}", "team-b") == "Running", 20, f"big{i}")
    for i in range(4):
        await system.apply(bare_pod(f"small{i}", "team-b", gpus=1))
        await system.wait_for(
            lambda i=i: pod_phase(system, f"small{i}", "team-b") == "Running", 20, f"small{i}"
        )
    await system.apply(bare_pod("train", "team-a", gpus=8, runtime="20s"))
    await system.wait_for(lambda: pod_phase(system, "train", "team-a") == "Succeeded", 40, "train to run")
    history = await preemptions(system)
    victims = {h["victim"] for h in history}
    assert len(victims) == 2, history
    placed = [v for v in system.history.of("train-pod", "team-a") if (v.get("status") or {}).get("nodes")]
    node = placed[-1]["status"]["nodes"][0]
    conn = await asyncpg.connect(system.dsn)
    try:
        freed = await conn.fetch(
            "SELECT n.node FROM fluxqueue.preemptions p JOIN fluxqueue.allocation_nodes n ON n.unit_id = p.victim_id"
        )
    finally:
        await conn.close()
    assert {r["node"] for r in freed} == {node}, (freed, node)


async def test_without_queue_objects_nothing_changes_and_nothing_is_asked(system):
    """No Queue objects: one queue, as before; the fluxqueue.io/queue label is stored and ignored, and the
    pass asks the database nothing about queues."""
    store = system.controller.store
    asked = []
    for method in ("queue_usage", "queue_pending", "holders", "mirror_queues"):
        original = getattr(store, method)

        async def counted(*args, _original=original, _name=method, **kwargs):
            asked.append(_name)
            return await _original(*args, **kwargs)

        setattr(store, method, counted)
    await system.apply(
        job("plain", "default", cpu="4", runtime="10s")
        + job("named", "default", queue_label="team-z", runtime="10s")
    )
    for name in ("plain", "named"):
        await system.wait_for(
            lambda n=name: phase_of(system, n, "default") == "Succeeded", 30, f"{name} to run"
        )
    await system.passes(2)
    assert asked == []
    assert (await system.unit_row("named-job"))["queue"] == "team-z"


async def test_a_controller_stopped_between_deciding_and_evicting_finishes_the_same_eviction(system):
    """The decision is in PostgreSQL before any eviction: the next leader carries out exactly that one (no
    second victim, nothing lost), and the waiting unit runs."""
    import asyncio

    await system.apply(namespace("team-a") + namespace("team-b"))
    await system.apply(queue("team-a", ["team-a"], {"cpu": 8}) + queue("team-b", ["team-b"], {"cpu": 8}))
    for i in range(4):
        await system.apply(bare_pod(f"b{i}", "team-b", cpu="4"))
        await system.wait_for(
            lambda i=i: pod_phase(system, f"b{i}", "team-b") == "Running", 20, f"b{i} running"
        )
    preempter = system.controller.scheduler.queues.preempter

    async def stuck(*_args, **_kwargs):
        await asyncio.Event().wait()  # the crash comes while evicting

    preempter._evict = stuck
    await system.apply(bare_pod("a0", "team-a", cpu="4", runtime="20s"))

    async def decided() -> bool:
        return len(await preemptions(system)) == 1

    await system.wait_for(decided, 20, "the preemption to be decided")
    await system.kill_controller()
    assert (await preemptions(system))[0]["evicted_at"] is None
    assert [pod_phase(system, f"b{i}", "team-b") for i in range(4)] == ["Running"] * 4  # nothing evicted yet
    await system.start_controller()
    await system.wait_for(
        lambda: pod_phase(system, "a0", "team-a") == "Succeeded", 40, "a0 to run and succeed"
    )
    history = await preemptions(system)
    assert [(h["victim"], h["evicted_at"] is not None) for h in history] == [("team-b/b3-pod", True)], history
    assert [pod_phase(system, f"b{i}", "team-b") for i in range(3)] == ["Running"] * 3


async def decayed_cpus(system, name: str) -> float:
    """The fair share's memory of ``name`` as the leader last wrote it (CPUs), 0 when none."""
    conn = await asyncpg.connect(system.dsn)
    try:
        value = await conn.fetchval(
            "SELECT (decayed_usage->>'cpu')::float8 / 1000 FROM fluxqueue.queues WHERE name = $1", name
        )
    finally:
        await conn.close()
    return value or 0.0


async def test_the_fair_share_memory_survives_a_controller_restart(system):
    """a-busy borrows the whole cluster for a while, then holds nothing; the controller crashes and a new one
    leads. When one slot frees with a unit of each queue waiting, b-idle (which never used anything) borrows
    first: the new leader read a-busy's decayed usage back. (Forgetting it, both would have a share of 0 and
    the tie would go to a-busy, first by name and first submitted.)"""
    await system.apply(namespace("a-busy") + namespace("b-idle"))
    await system.apply(queue("a-busy", ["a-busy"], {}) + queue("b-idle", ["b-idle"], {}))
    await system.apply("".join(job(f"burst{i}", "a-busy", cpu="4", runtime="200s") for i in range(4)))
    await system.wait_for(lambda: _at_least(system, "a-busy", 4), 30, "a-busy to borrow the whole cluster")
    for i in range(4):
        await system.wait_for(
            lambda i=i: phase_of(system, f"burst{i}", "a-busy") == "Succeeded", 40, f"burst{i} to end"
        )
    # the mirror is written every STATUS_SECONDS: wait for one written after the burst ended
    remembered = 0.0

    async def written_after_the_burst() -> bool:
        nonlocal remembered
        s = await queue_status(system, "a-busy")
        remembered = await decayed_cpus(system, "a-busy")
        return s.get("runningUnits") == 0 and remembered > 0

    await system.wait_for(written_after_the_burst, 20, "a-busy's decayed usage in the database")
    # The default queue holds the cluster: three long units and one ended on demand (the slot to compete for).
    await system.apply(
        job("wall", "default", cpu="4", runtime="2000s")
        .replace("parallelism: 1", "parallelism: 3")
        .replace("completions: 1", "completions: 3")
        + job("slot", "default", cpu="4", runtime="2000s")
    )
    await system.wait_for(
        lambda: _at_least(system, "default", 2), 30, "the default queue to hold the cluster"
    )

    await system.kill_controller()
    conn = await asyncpg.connect(system.dsn)
    try:
        restarted_at = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    await system.start_controller()
    await system.apply(job("next", "a-busy", cpu="4", runtime="400s"))
    await system.apply(job("next", "b-idle", cpu="4", runtime="400s"))

    async def queued_and_ranked() -> bool:
        conn = await asyncpg.connect(system.dsn)
        try:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM fluxqueue.units WHERE name = 'next-job' AND state IN ('Queued', 'Reserved')"
            )
            shares = {
                r["queue"]: float(r["share"])
                for r in await conn.fetch(
                    "SELECT queue, share FROM fluxqueue.fair_share WHERE updated_at > $1", restarted_at
                )
            }
        finally:
            await conn.close()
        return waiting == 2 and shares.get("a-busy", 0) > shares.get("b-idle", 1) == 0

    await system.wait_for(queued_and_ranked, 30, "the new leader to rank a-busy behind b-idle")
    # decayed further over the downtime, never forgotten
    assert 0 < await decayed_cpus(system, "a-busy") <= remembered
    await system.kubectl("delete", "job", "slot", "-n", "default", "--wait=false")
    await system.wait_for(lambda: _at_least(system, "b-idle", 1), 30, "b-idle to borrow the freed slot")
    await system.passes(2)
    assert (await holding(system, "b-idle"), await holding(system, "a-busy")) == (1, 0)
