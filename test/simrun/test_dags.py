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
