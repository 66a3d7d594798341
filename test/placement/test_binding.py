"""assign_pods: pods go to the allocated nodes, never beyond a node's slots, in a stable order."""

from hypothesis import given
from hypothesis import strategies as st

from fluxqueue.fluxion.allocation import NodeAssignment
from fluxqueue.placement.binding import assign_pods
from fluxqueue.placement.resources import Resources


def pod(name, index=None, node=None, phase=None):
    p = {"metadata": {"name": name, "annotations": {}}, "spec": {}, "status": {}}
    if index is not None:
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] = str(index)
    if node:
        p["spec"]["nodeName"] = node
    if phase:
        p["status"]["phase"] = phase
    return p


def test_indexed_pods_fill_nodes_in_completion_index_order():
    alloc = {"n2": NodeAssignment(cores=2, slots=2), "n1": NodeAssignment(cores=1, slots=1)}
    pods = [pod("job-x", 2), pod("job-y", 0), pod("job-z", 1)]
    assert assign_pods(alloc, pods) == {"job-y": "n1", "job-z": "n2", "job-x": "n2"}


def test_already_bound_pods_keep_their_slot_and_finished_pods_free_theirs():
    alloc = {"n1": NodeAssignment(slots=1), "n2": NodeAssignment(slots=1)}
    pods = [pod("a", node="n1"), pod("b", node="n2", phase="Failed"), pod("c")]
    assert assign_pods(alloc, pods) == {"c": "n2"}


def test_more_pods_than_slots_leaves_the_extra_ones_out():
    alloc = {"n1": NodeAssignment(slots=1)}
    assert assign_pods(alloc, [pod("a"), pod("b")]) == {"a": "n1"}


def test_slots_are_derived_from_cores_when_the_allocation_does_not_say():
    alloc = {"n1": NodeAssignment(cores=4, memory=8 * 2**30), "n2": NodeAssignment(cores=2, memory=1 * 2**30)}
    per_pod = Resources(2000, 2**30, 0, 1)
    result = assign_pods(alloc, [pod(f"p{i}") for i in range(4)], per_pod=per_pod)
    assert result == {"p0": "n1", "p1": "n1", "p2": "n2"}  # n2: 2 cores but 1 GiB -> one pod


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(min_value=0, max_value=4), min_size=1),
    st.integers(min_value=0, max_value=12),
    st.lists(st.sampled_from(["a", "b", "c", "d", "elsewhere"]), max_size=4),
)
def test_assignment_never_exceeds_slots_and_is_deterministic(slots, pending, bound_to):
    alloc = {n: NodeAssignment(slots=s) for n, s in slots.items()}
    pods = [pod(f"p{i}", index=i) for i in range(pending)] + [
        pod(f"b{i}", node=n) for i, n in enumerate(bound_to)
    ]
    result = assign_pods(alloc, pods)
    assert result == assign_pods(alloc, list(reversed(pods)))
    for n, s in slots.items():
        used = sum(1 for v in result.values() if v == n) + bound_to.count(n)
        assert sum(1 for v in result.values() if v == n) <= max(0, s - bound_to.count(n))
        assert used <= max(s, bound_to.count(n))
    free = sum(max(0, s - bound_to.count(n)) for n, s in slots.items())
    assert len(result) == min(pending, free)  # every pod that can be placed is
    assert all(name.startswith("p") for name in result)


def test_exclusive_units_put_one_pod_per_node_even_when_cores_would_fit_more():
    alloc = {"n1": NodeAssignment(cores=32), "n2": NodeAssignment(cores=32)}
    result = assign_pods(alloc, [pod("a", 0), pod("b", 1)], per_pod=Resources(2000, 0, 0, 1), exclusive=True)
    assert result == {"a": "n1", "b": "n2"}
