"""The RFC 31 constraint written into jobspecs keeps pods exactly where kube-scheduler would let them.

The translation is checked against Kubernetes' own semantics node by node, for hand-picked cases and for
random label sets, affinity terms and taints."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fluxqueue.placement.constraints import constraint_for, evaluate, node_allows, node_properties, tolerates
from fluxqueue.placement.resources import Resources
from fluxqueue.placement.units import single_set_unit


def unit(selector=None, terms=None, tolerations=None):
    return single_set_unit(
        kind="Pod",
        namespace="ns",
        name="p",
        uid="u",
        size=1,
        per_pod=Resources(1000, 0, 0, 1),
        duration=60,
        node_selector=selector or {},
        node_affinity_terms=terms or [],
        tolerations=tolerations or [],
    )


NODES = [
    ("n1", {"zone": "a", "disk": "ssd", "gen": "3"}, []),
    (
        "n2",
        {"zone": "b", "disk": "hdd", "gen": "5"},
        [{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
    ),
    ("n3", {"zone": "b", "gen": "x"}, [{"key": "maint", "effect": "NoExecute"}]),
    ("n4", {"zone": "c"}, [{"key": "soft", "effect": "PreferNoSchedule"}]),
]


def allowed_by_kubernetes(u):
    return {n for n, labels, taints in NODES if node_allows(u.pod_sets[0], n, labels, taints)}


def allowed_by_constraint(u):
    c = constraint_for(u.pod_sets[0], NODES)
    return {n for n, labels, _ in NODES if evaluate(c, n, node_properties(labels))}


def test_no_rules_means_no_constraint_except_hard_taints():
    u = unit()
    assert constraint_for(u.pod_sets[0], NODES) == {"not": [{"hostlist": ["n2", "n3"]}]}
    assert allowed_by_constraint(u) == allowed_by_kubernetes(u) == {"n1", "n4"}


def test_node_selector_becomes_properties():
    u = unit(selector={"disk": "ssd", "zone": "a"})
    c = constraint_for(u.pod_sets[0], NODES)
    assert c["and"][0] == {"properties": ["disk=ssd", "zone=a"]}
    assert allowed_by_constraint(u) == {"n1"}


def test_affinity_operators():
    cases = [
        ({"key": "zone", "operator": "In", "values": ["a", "c"]}, {"n1", "n4"}),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"n4"}),
        ({"key": "disk", "operator": "Exists"}, {"n1"}),
        ({"key": "disk", "operator": "DoesNotExist"}, {"n4"}),
        ({"key": "gen", "operator": "Gt", "values": ["2"]}, {"n1"}),
        ({"key": "gen", "operator": "Lt", "values": ["4"]}, {"n1"}),
    ]
    for expr, expected in cases:
        u = unit(terms=[{"matchExpressions": [expr]}])
        assert allowed_by_kubernetes(u) == expected, expr
        assert allowed_by_constraint(u) == expected, expr


def test_terms_are_ored_and_match_fields_name_nodes():
    u = unit(
        terms=[
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n4"]}]},
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        ]
    )
    assert allowed_by_constraint(u) == allowed_by_kubernetes(u) == {"n1", "n4"}


def test_tolerations_open_tainted_nodes():
    u = unit(tolerations=[{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])
    assert allowed_by_constraint(u) == allowed_by_kubernetes(u) == {"n1", "n2", "n4"}
    everything = unit(tolerations=[{"operator": "Exists"}])
    assert constraint_for(everything.pod_sets[0], NODES) is None


def test_toleration_rules():
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates([{"key": "k", "operator": "Exists"}], taint)
    assert tolerates([{"key": "k", "value": "v"}], taint)  # operator defaults to Equal
    assert not tolerates([{"key": "k", "value": "w"}], taint)
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert not tolerates([{"key": "other", "operator": "Exists"}], taint)


label_keys = st.sampled_from(["zone", "disk", "gen", "example.com/rack"])
label_values = st.sampled_from(["a", "b", "1", "7"])
labels = st.dictionaries(label_keys, label_values, max_size=4)
taints = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(["t1", "t2"]),
            "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]),
        },
        optional={"value": st.sampled_from(["x", "y"])},
    ),
    max_size=2,
)
expressions = st.one_of(
    st.fixed_dictionaries(
        {
            "key": label_keys,
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(label_values, min_size=1, max_size=2),
        }
    ),
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
    st.fixed_dictionaries(
        {
            "key": label_keys,
            "operator": st.sampled_from(["Gt", "Lt"]),
            "values": st.lists(label_values, min_size=1, max_size=1),
        }
    ),
)
terms = st.lists(
    st.fixed_dictionaries({"matchExpressions": st.lists(expressions, min_size=1, max_size=3)}), max_size=2
)
tolerations = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from(["t1", "t2"]), "operator": st.sampled_from(["Exists", "Equal"])},
        optional={
            "value": st.sampled_from(["x", "y"]),
            "effect": st.sampled_from(["NoSchedule", "NoExecute"]),
        },
    ),
    max_size=2,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(labels, taints), min_size=1, max_size=5),
    st.dictionaries(label_keys, label_values, max_size=2),
    terms,
    tolerations,
)
def test_constraint_selects_exactly_the_nodes_kubernetes_allows(node_specs, selector, affinity, tols):
    nodes = [(f"n{i}", lbl, tnt) for i, (lbl, tnt) in enumerate(node_specs)]
    u = unit(selector=selector, terms=affinity, tolerations=tols)
    c = constraint_for(u.pod_sets[0], nodes)
    for name, lbl, tnt in nodes:
        assert evaluate(c, name, node_properties(lbl)) == node_allows(u.pod_sets[0], name, lbl, tnt), (
            name,
            c,
        )
