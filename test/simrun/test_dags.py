"""The report's workflows: DAGs of units linked by fluxqueue.io/dependency, makespan beside critical path."""

from __future__ import annotations

from fluxqueue.sim.report.dags import dag_report, edges
from fluxqueue.sim.report.recorder import UnitRecord
from fluxqueue.sim.workload.model import WorkloadItem


def job(name: str, runtime: str, dependency: str | None = None) -> WorkloadItem:
    meta = {"name": name, "namespace": "default"}
    if dependency:
        meta["annotations"] = {"fluxqueue.io/dependency": dependency}
    manifest = {
        "kind": "Job",
        "metadata": meta,
        "spec": {"template": {"metadata": {"annotations": {"sim.fluxqueue.io/runtime": runtime}}}},
    }
    return WorkloadItem("Job", "default", name, 0.0, [manifest], 1)


def record(item: WorkloadItem, submitted: float, bound: float | None, finished: float | None) -> UnitRecord:
    return UnitRecord(item.key, item.kind, 1, submitted, first_bound=bound, finished=finished)


def test_edges_name_units_of_the_run_by_workload_name():
    items = [job("a", "10s"), job("b", "10s", "afterok:a,afterany:missing"), job("c", "5s", "after:a+1")]
    assert edges(items) == [
        ("Job/default/b", "Job/default/a", "afterok", 0.0),
        ("Job/default/c", "Job/default/a", "after", 60.0),
    ]


def test_the_critical_path_is_the_longest_chain_of_runtimes_and_after_delays():
    a, b, c, d = (
        job("a", "100s"),
        job("b", "50s", "afterok:a"),
        job("c", "300s", "after:a+1"),  # may start 60 s after a started
        job("d", "10s", "afterok:b:c"),
    )
    lone = job("lone", "999s")
    # Wall seconds at time scale 10: the DAG took 50 s of wall time, 500 simulated.
    units = {
        a.key: record(a, 0, 1, 11),
        b.key: record(b, 0, 11, 16),
        c.key: record(c, 0, 8, 38),
        d.key: record(d, 0, 40, 50),
        lone.key: record(lone, 0, 0, 100),
    }
    [dag] = dag_report([a, b, c, d, lone], units, time_scale=10)
    assert dag["units"] == 4 and dag["ran"] == 4
    assert dag["critical_path"] == ["a", "c", "d"]
    assert dag["critical_path_s"] == 60 + 300 + 10
    assert dag["makespan_s"] == 500
    assert round(dag["stretch"], 2) == round(500 / 370, 2)


def test_a_unit_that_never_ran_is_not_on_the_critical_path():
    a, retry, after = (
        job("a", "100s"),
        job("retry", "100s", "afternotok:a"),
        job("next", "10s", "afterok:a?afterok:retry"),
    )
    units = {
        a.key: record(a, 0, 1, 11),
        retry.key: record(retry, 0, None, 11),
        after.key: record(after, 0, 12, 13),
    }
    [dag] = dag_report([a, retry, after], units, time_scale=10)
    assert dag["ran"] == 2 and dag["critical_path"] == ["a", "next"] and dag["critical_path_s"] == 110


def test_a_generated_dag_is_a_head_parallel_steps_and_a_tail_linked_by_afterok():
    from fluxqueue.sim.workload import GeneratorSpec, generate, with_mix

    items = generate(with_mix(GeneratorSpec(jobs=12, seed=5, nodes=4, cpus=8), "job=1,dag=1"))
    dags = {i.meta["dag"] for i in items if "dag" in i.meta}
    assert dags, "no DAG drawn"
    name = sorted(dags)[0]
    steps = [i for i in items if i.meta.get("dag") == name]
    assert steps[0].name == f"{name}-head" and steps[-1].name == f"{name}-tail"
    assert len({i.submit_at for i in steps}) == 1  # submitted together, in any order
    links = {(d.split("/")[-1], t.split("/")[-1], c) for d, t, c, _ in edges(steps)}
    middle = [i.name for i in steps[1:-1]]
    assert 2 <= len(middle) <= 4
    assert links == {(m, f"{name}-head", "afterok") for m in middle} | {
        (f"{name}-tail", m, "afterok") for m in middle
    }
    # Without dag in the mix, a seed's draws are what they were.
    plain = generate(GeneratorSpec(jobs=12, seed=5, nodes=4, cpus=8))
    assert not any("dag" in i.meta for i in plain)
