"""pod_requests follows kube-scheduler's PodRequests: containers summed, init containers max'ed, sidecars
added, overhead added, limits standing in for absent requests."""

from hypothesis import given
from hypothesis import strategies as st

from fluxqueue.placement.resources import Resources, pod_requests

GI = 2**30


def container(cpu=None, memory=None, gpu=None, limits=None, restart=None):
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    if gpu is not None:
        requests["nvidia.com/gpu"] = gpu
    c = {"name": "c", "resources": {"requests": requests}}
    if limits:
        c["resources"]["limits"] = limits
    if restart:
        c["restartPolicy"] = restart
    return c


def pod(containers=(), init=(), overhead=None):
    spec = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    if overhead:
        spec["overhead"] = overhead
    return {"spec": spec}


def test_containers_requests_are_summed():
    p = pod([container("500m", "1Gi"), container("1", "512Mi")])
    assert pod_requests(p) == Resources(1500, GI + GI // 2, 0, 1)


def test_a_pod_without_requests_asks_nothing_but_counts_as_one_pod():
    assert pod_requests(pod([{"name": "c"}])) == Resources(0, 0, 0, 1)
    assert pod_requests({}) == Resources(0, 0, 0, 1)


def test_limits_stand_in_for_absent_requests_per_resource():
    c = container(cpu="250m", limits={"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"})
    # cpu request present: it wins over the limit; memory and gpu come from limits.
    assert pod_requests(pod([c])) == Resources(250, 2 * GI, 1, 1)


def test_init_container_larger_than_the_app_sets_the_request():
    p = pod([container("1", "1Gi")], init=[container("3", "512Mi")])
    assert pod_requests(p) == Resources(3000, GI, 0, 1)


def test_sidecar_init_containers_add_to_app_and_to_later_init_steps():
    # sidecar 500m runs with the app (1 + 0.5) and with the later init container (2 + 0.5 = 2.5, the peak).
    sidecar = container("500m", "256Mi", restart="Always")
    later_init = container("2", "128Mi")
    p = pod([container("1", "1Gi")], init=[sidecar, later_init])
    assert pod_requests(p) == Resources(2500, GI + 256 * 2**20, 0, 1)


def test_init_container_before_the_sidecar_does_not_count_it():
    first_init = container("2")
    sidecar = container("500m", restart="Always")
    p = pod([container("1")], init=[first_init, sidecar])
    assert pod_requests(p).cpu_milli == 2000  # max(2, 1 + 0.5)


def test_overhead_is_added_after_the_max():
    p = pod([container("1", "1Gi")], init=[container("2")], overhead={"cpu": "250m", "memory": "64Mi"})
    assert pod_requests(p) == Resources(2250, GI + 64 * 2**20, 0, 1)


def test_gpus_come_from_the_nvidia_resource():
    p = pod([container("1", gpu="2"), container("1", gpu=1)])
    assert pod_requests(p).gpus == 3


millis = st.integers(min_value=0, max_value=64000)


@given(st.lists(millis, min_size=1, max_size=4), st.lists(millis, max_size=3))
def test_request_is_at_least_the_containers_sum_and_every_init_container(app, init):
    p = pod([container(f"{m}m") for m in app], init=[container(f"{m}m") for m in init])
    cpu = pod_requests(p).cpu_milli
    assert cpu == max([sum(app), *init])
