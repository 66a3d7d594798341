"""The official Kubernetes Python client (``kubernetes`` from PyPI) against the emulator.

Each test is a gap the client's own end-to-end suite found: typed responses it cannot read, paths that answer
what kube-apiserver would not, types it expects served, error bodies, watches the server ends, metadata-only
requests, streaming subresources. The client is synchronous, so the emulator runs on an event loop of its own
in a thread (``Emulator``); the test talks to it over HTTPS only, as to a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")

from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes import watch as k8s_watch  # noqa: E402
from kubernetes.dynamic import DynamicClient  # noqa: E402
from kubernetes.stream import portforward, stream  # noqa: E402
from support.polling import Budget  # noqa: E402

from fluxqueue.sim.apiserver import APIServer  # noqa: E402

TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SELECTOR = {"matchLabels": {"app": "a"}}


class Emulator:
    """An APIServer serving from its own event loop in a daemon thread."""

    def __init__(self, kubeconfig: Path, **kwargs: Any):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="emulator", daemon=True)
        self.thread.start()

        async def start() -> APIServer:
            api = APIServer(**kwargs)
            await api.start(host="127.0.0.1", port=0)
            api.write_kubeconfig(kubeconfig)
            return api

        self.api = self.run(start())
        self.kubeconfig = kubeconfig

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.run(self.api.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def _client(kubeconfig: Path) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return k8s.ApiClient(cfg)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path / "kubeconfig")
    try:
        yield emu
    finally:
        emu.close()


@pytest.fixture
def api_client(emulator: Emulator) -> Iterator[k8s.ApiClient]:
    c = _client(emulator.kubeconfig)
    try:
        yield c
    finally:
        c.close()


def raw(
    c: k8s.ApiClient,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, bytes]:
    """One request through the client's own transport and authentication; (status, body bytes)."""
    m, url, h, b, _ = c.param_serialize(
        method,
        path,
        query_params=query,
        header_params=dict(headers or {}),
        body=body,
        auth_settings=["BearerToken"],
    )
    resp = c.call_api(m, url, header_params=h, body=b)
    return resp.status, resp.read()


# ----- typed create responses of apps/v1 workloads


def test_new_workloads_come_back_with_zero_status_counts(api_client):
    apps = k8s.AppsV1Api(api_client)
    core = k8s.CoreV1Api(api_client)
    ds = apps.create_namespaced_daemon_set(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "ds"},
            "spec": {"selector": SELECTOR, "template": TEMPLATE},
        },
    )
    assert (
        ds.status.current_number_scheduled,
        ds.status.number_misscheduled,
        ds.status.desired_number_scheduled,
        ds.status.number_ready,
    ) == (0, 0, 0, 0)
    assert ds.status.number_available is None  # omitempty in k8s.io/api: absent until a controller sets it
    rs = apps.create_namespaced_replica_set(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "rs"},
            "spec": {"selector": SELECTOR, "template": TEMPLATE},
        },
    )
    assert rs.status.replicas == 0 and rs.status.ready_replicas is None
    sts = apps.create_namespaced_stateful_set(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "sts"},
            "spec": {"serviceName": "sts", "selector": SELECTOR, "template": TEMPLATE},
        },
    )
    assert (sts.status.replicas, sts.status.available_replicas) == (0, 0)
    # lists, reads of /status and a status write that leaves them out read the same
    assert [d.status.number_ready for d in apps.list_namespaced_daemon_set("default").items] == [0]
    assert apps.read_namespaced_stateful_set_status("sts", "default").status.replicas == 0
    patched = apps.patch_namespaced_daemon_set_status("ds", "default", {"status": {"observedGeneration": 1}})
    assert (patched.status.observed_generation, patched.status.number_ready) == (1, 0)
    # a merge patch that removes a field without omitempty: it reads 0 again, as Go decodes it
    patched = apps.patch_namespaced_replica_set_status("rs", "default", {"status": {"replicas": None}})
    assert patched.status.replicas == 0
    rc = core.create_namespaced_replication_controller(
        "default",
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "rc"},
            "spec": {"template": TEMPLATE},
        },
    )
    assert rc.status.replicas == 0


# ----- routing


def test_a_namespaced_type_not_served_is_not_found(api_client):
    for method in ("GET", "POST", "PUT", "DELETE"):
        body = {} if method in ("POST", "PUT") else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        for path in ("/api/v1/namespaces/default/widgets", "/api/v1/namespaces/default/widgets/w"):
            status, text = raw(api_client, method, path, headers, body)
            assert status == 404, (method, path, text)
            assert json.loads(text)["reason"] == "NotFound"
    # a cluster-scoped type under a namespace is no path either; the Namespace's own subresources are
    assert raw(api_client, "GET", "/api/v1/namespaces/default/nodes")[0] == 404
    assert raw(api_client, "GET", "/api/v1/namespaces/default/status")[0] == 200
    with pytest.raises(k8s.ApiException) as e:
        k8s.CustomObjectsApi(api_client).list_namespaced_custom_object(
            "example.com", "v1", "default", "widgets"
        )
    assert e.value.status == 404


# ----- ReplicationController and APIService


def test_replication_controllers_are_served(api_client):
    core = k8s.CoreV1Api(api_client)
    rc = core.create_namespaced_replication_controller(
        "default",
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "template": TEMPLATE},
        },
    )
    # SetDefaults_ReplicationController: the selector and labels come from the template
    assert rc.spec.selector == {"app": "a"} and rc.metadata.labels == {"app": "a"}
    scale = core.read_namespaced_replication_controller_scale("web", "default")
    assert (scale.spec.replicas, scale.status.selector) == (2, "app=a")
    core.patch_namespaced_replication_controller_scale("web", "default", {"spec": {"replicas": 3}})
    assert core.read_namespaced_replication_controller("web", "default").spec.replicas == 3
    assert [r.metadata.name for r in core.list_replication_controller_for_all_namespaces().items] == ["web"]
    with pytest.raises(k8s.ApiException) as e:
        core.create_namespaced_replication_controller(
            "default",
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "bad"},
                "spec": {"selector": {"app": "b"}, "template": TEMPLATE},
            },
        )
    assert e.value.status == 422
    dyn = DynamicClient(api_client)
    rcs = dyn.resources.get(api_version="v1", kind="ReplicationController")
    assert rcs.short_names == ["rc"] and "all" in rcs.categories
    assert [o.metadata.name for o in rcs.get(namespace="default").items] == ["web"]
    core.delete_namespaced_replication_controller("web", "default")
    assert core.list_namespaced_replication_controller("default").items == []


def test_api_services_are_served(api_client):
    reg = k8s.ApiregistrationV1Api(api_client)
    local = {a.metadata.name: a for a in reg.list_api_service().items}
    # the autoregistered local APIServices, one per built-in group version, available
    assert {"v1.", "v1.apps", "v1.batch", "v1.apiregistration.k8s.io"} <= set(local)
    cond = local["v1.apps"].status.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("Available", "True", "Local")
    created = reg.create_api_service(
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {
                "group": "wardle.example.com",
                "version": "v1alpha1",
                "groupPriorityMinimum": 1000,
                "versionPriority": 15,
                "insecureSkipTLSVerify": True,
                "service": {"name": "api", "namespace": "wardle"},
            },
        }
    )
    cond = created.status.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("Available", "False", "ServiceNotFound")
    assert created.spec.service.port == 443
    with pytest.raises(k8s.ApiException) as e:
        reg.create_api_service(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "wrong"},
                "spec": {
                    "group": "a.example.com",
                    "version": "v1",
                    "groupPriorityMinimum": 1,
                    "versionPriority": 1,
                },
            }
        )
    assert e.value.status == 422
    dyn = DynamicClient(api_client)
    services = dyn.resources.get(api_version="apiregistration.k8s.io/v1", kind="APIService")
    assert "v1alpha1.wardle.example.com" in [o.metadata.name for o in services.get().items]
    reg.delete_api_service("v1alpha1.wardle.example.com")
    with pytest.raises(k8s.ApiException) as e:
        reg.read_api_service("v1alpha1.wardle.example.com")
    assert e.value.status == 404


# ----- Status bodies


def test_error_bodies_are_kube_apiservers_bytes(api_client):
    core = k8s.CoreV1Api(api_client)
    with pytest.raises(k8s.ApiException) as e:
        core.read_namespaced_pod("nope", "default")
    # byte for byte what kube-apiserver writes (field order of metav1.Status, omitempty, a final newline)
    assert e.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"pods \\"nope\\" not found","reason":"NotFound",'
        '"details":{"name":"nope","kind":"pods"},"code":404}\n'
    )
    with pytest.raises(k8s.ApiException) as e:
        k8s.AppsV1Api(api_client).read_namespaced_deployment("nope", "default")
    assert e.value.body.endswith(
        '"details":{"name":"nope","group":"apps","kind":"deployments"},"code":404}\n'
    )
    with pytest.raises(k8s.ApiException) as e:
        k8s.BatchV1Api(api_client).create_namespaced_job(
            "default",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "x"}]}
                    }
                },
            },
        )
    body = json.loads(e.value.body)
    assert list(body) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert list(body["details"]) == ["name", "group", "kind", "causes"]
    assert list(body["details"]["causes"][0]) == ["reason", "message", "field"]
    # no empty group in the details of a core type
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    with pytest.raises(k8s.ApiException) as e:
        core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert json.loads(e.value.body)["details"] == {"name": "cm", "kind": "configmaps"}


# ----- watches the server ends


@pytest.fixture
def short_watches(tmp_path: Path) -> Iterator[Emulator]:
    """Watches without timeoutSeconds end after 0.3-0.6 s: --min-request-timeout 1800 at time scale 6000."""
    emu = Emulator(tmp_path / "kubeconfig", time_scale=6000.0)
    calls: list[float] = []
    engine = emu.api.engine
    real_watch = engine.watch

    async def counting_watch(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return await real_watch(*args, **kwargs)

    engine.watch = counting_watch  # type: ignore[method-assign]
    emu.watch_calls = calls  # type: ignore[attr-defined]
    try:
        yield emu
    finally:
        emu.close()


def test_a_watch_without_timeout_ends_between_one_and_two_min_request_timeouts(short_watches):
    with _client(short_watches.kubeconfig) as c:
        for _ in range(3):
            t0 = time.monotonic()
            m, url, h, b, _ = c.param_serialize(
                "GET",
                "/api/v1/namespaces/default/configmaps",
                query_params=[("watch", "true")],
                auth_settings=["BearerToken"],
            )
            resp = c.call_api(m, url, header_params=h, body=b)
            assert resp.status == 200
            assert resp.read() == b""  # nothing happened; the server just ended the stream, without an error
            assert 0.25 <= time.monotonic() - t0 < 3.0
        # timeoutSeconds=0 is "not set" as well (GetTimeoutForWatch); an explicit timeout is kept
        t0 = time.monotonic()
        m, url, h, b, _ = c.param_serialize(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            query_params=[("watch", "true"), ("timeoutSeconds", "2")],
            auth_settings=["BearerToken"],
        )
        c.call_api(m, url, header_params=h, body=b).read()
        assert time.monotonic() - t0 >= 1.9


def test_the_official_watch_resumes_without_losing_or_replaying_events(short_watches):
    with _client(short_watches.kubeconfig) as c:
        core = k8s.CoreV1Api(c)
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        names = [f"cm-{i:02d}" for i in range(24)]

        def writer() -> None:
            with _client(short_watches.kubeconfig) as wc:
                wcore = k8s.CoreV1Api(wc)
                for n in names:
                    wcore.create_namespaced_config_map("default", {"metadata": {"name": n}})
                    time.sleep(0.1)  # 2.4 s in all: several watches end meanwhile
                for n in names[::3]:
                    wcore.delete_namespaced_config_map(n, "default")

        t = threading.Thread(target=writer)
        t.start()
        seen: list[tuple[str, str]] = []
        w = k8s_watch.Watch()
        want = len(names) + len(names[::3])
        for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == want:
                w.stop()
        t.join()
        assert seen == [("ADDED", n) for n in names] + [("DELETED", n) for n in names[::3]]
        assert len(short_watches.watch_calls) >= 3  # the stream was ended and resumed several times


def test_the_controller_informer_rewatches_without_losing_or_replaying_events(short_watches):
    """fluxqueue.kube.watch.Informer over fluxqueue's own client, through watches the server ends."""
    from fluxqueue.kube.client import KubeClient
    from fluxqueue.kube.watch import Informer

    events: list[tuple[str, str, str]] = []

    class ServerTimedWatches:
        """The controller's client, asking for watches without a timeout of their own (timeoutSeconds=0)."""

        def __init__(self, inner: KubeClient):
            self.inner = inner

        def list(self, *a: Any, **kw: Any) -> Any:
            return self.inner.list(*a, **kw)

        def watch(self, *a: Any, **kw: Any) -> Any:
            return self.inner.watch(*a, timeout_seconds=0, **kw)

    async def scenario() -> tuple[Informer, dict[str, str]]:
        kc = KubeClient.from_kubeconfig(short_watches.kubeconfig)
        if inspect.isawaitable(kc):
            kc = await kc
        try:
            inf = Informer(
                ServerTimedWatches(kc),
                ("", "v1", "configmaps"),
                lambda kind, obj, old: events.append(
                    (kind, obj["metadata"]["name"], obj["metadata"].get("resourceVersion", ""))
                ),
                namespace="default",
            )
            task = asyncio.create_task(inf.run())
            await asyncio.wait_for(inf.synced.wait(), 10)
            for i in range(20):
                await kc.create(
                    ("", "v1", "configmaps"), {"metadata": {"name": f"c{i}"}, "data": {"v": "0"}}, "default"
                )
                await asyncio.sleep(0.1)
                if i % 4 == 3:
                    await kc.patch(("", "v1", "configmaps"), f"c{i}", {"data": {"v": "1"}}, "default")
                if i % 5 == 4:
                    await kc.delete(("", "v1", "configmaps"), f"c{i - 1}", "default")
            final = await kc.list(("", "v1", "configmaps"), namespace="default")
            want_rv = final["metadata"]["resourceVersion"]
            budget = Budget(10)
            while inf._rv is None or int(inf._rv) < int(want_rv):
                assert not budget.exhausted(), "the informer fell behind"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return inf, {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in final["items"]}
        finally:
            await kc.close()

    inf, final = short_watches.run(scenario(), timeout=60)
    assert inf.relists == 1  # resumed from its resourceVersion every time, never listed again
    assert len(short_watches.watch_calls) >= 3
    versions = [rv for _k, _n, rv in events]
    assert len(versions) == len(set(versions)), "an event was delivered twice"
    assert [int(v) for v in versions] == sorted(int(v) for v in versions)
    expected = []
    for i in range(20):
        expected.append(("ADDED", f"c{i}"))
        if i % 4 == 3:
            expected.append(("MODIFIED", f"c{i}"))
        if i % 5 == 4:
            expected.append(("DELETED", f"c{i - 1}"))
    assert [(k, n) for k, n, _rv in events] == expected
    assert {k.split("/")[-1]: o["metadata"]["resourceVersion"] for k, o in inf.cache.items()} == final


# ----- metadata-only requests

PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def test_metadata_only_lists_gets_and_watches(api_client):
    core = k8s.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "m", "labels": {"k": "v"}}, "data": {"big": "x" * 1000}}
    )
    status, text = raw(
        api_client,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        {"Accept": PARTIAL_LIST + ",application/json"},
    )
    lst = json.loads(text)
    assert status == 200 and (lst["kind"], lst["apiVersion"]) == (
        "PartialObjectMetadataList",
        "meta.k8s.io/v1",
    )
    assert lst["metadata"]["resourceVersion"]
    [item] = lst["items"]
    assert set(item) == {"kind", "apiVersion", "metadata"}
    assert (item["kind"], item["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1")
    assert item["metadata"]["labels"] == {"k": "v"} and item["metadata"]["uid"] == cm.metadata.uid
    # client-go's metadata client offers protobuf first: the JSON alternative is what is served
    status, text = raw(
        api_client,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        {
            "Accept": "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
            + PARTIAL_LIST
        },
    )
    assert json.loads(text)["kind"] == "PartialObjectMetadataList"
    status, text = raw(api_client, "GET", "/api/v1/namespaces/default/configmaps/m", {"Accept": PARTIAL})
    assert json.loads(text) == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": item["metadata"],
    }
    # a list asked for as a single object is not acceptable
    assert raw(api_client, "GET", "/api/v1/namespaces/default/configmaps", {"Accept": PARTIAL})[0] == 406
    status, text = raw(
        api_client,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        {"Accept": PARTIAL},
        query=[("watch", "true"), ("resourceVersion", "1"), ("timeoutSeconds", "1")],
    )
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["type"] for e in events] == ["ADDED"]
    assert events[0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": item["metadata"],
    }
    # full objects when nothing asks otherwise
    assert "data" in json.loads(raw(api_client, "GET", "/api/v1/namespaces/default/configmaps/m")[1])


# ----- streaming subresources


def test_exec_attach_and_port_forward_say_the_simulator_does_not_support_them(api_client):
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    )
    with pytest.raises(k8s.ApiException) as e:
        stream(
            core.connect_get_namespaced_pod_exec,
            "p",
            "default",
            command=["ls"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
    assert "400" in str(e.value) and "pods/exec is not supported by the simulator" in str(e.value)
    with pytest.raises(k8s.ApiException) as e:
        stream(
            core.connect_get_namespaced_pod_attach,
            "p",
            "default",
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
    assert "pods/attach is not supported by the simulator" in str(e.value)
    with pytest.raises(k8s.ApiException) as e:
        portforward(core.connect_get_namespaced_pod_portforward, "p", "default", ports="80")
    assert "pods/portforward is not supported by the simulator" in str(e.value)
    # a missing pod is still not found
    with pytest.raises(k8s.ApiException) as e:
        stream(
            core.connect_get_namespaced_pod_exec,
            "nope",
            "default",
            command=["ls"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
    assert "404" in str(e.value)
    # proxying answers a Status too, over plain HTTP
    status, text = raw(api_client, "GET", "/api/v1/namespaces/default/pods/p/proxy")
    assert status == 400 and json.loads(text)["message"].startswith(
        "pods/proxy is not supported by the simulator"
    )
    # and discovery lists them, as kube-apiserver does
    names = {r.name for r in core.get_api_resources().resources}
    assert {
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/proxy",
        "services/proxy",
        "nodes/proxy",
    } <= names
    assert {"replicationcontrollers", "replicationcontrollers/scale"} <= names


# ----- kubernetes.utils, whose errors quote the server's body


def test_create_from_yaml_reports_conflicts_in_kube_apiservers_words(api_client, tmp_path):
    """The strings the client's own e2e suite (test_utils.py) expects from kube-apiserver, byte for byte."""
    from kubernetes import utils

    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1alpha1.wardle.k8s.io"},
        "spec": {
            "insecureSkipTLSVerify": True,
            "group": "wardle.k8s.io",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"name": "api", "namespace": "wardle"},
            "version": "v1alpha1",
        },
    }
    utils.create_from_dict(api_client, apiservice)
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_dict(api_client, apiservice)
    assert str(e.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"apiservices.apiregistration.k8s.io '
        '\\"v1alpha1.wardle.k8s.io\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io","kind":"apiservices"},'
        '"code":409}\n'
    )
    manifests = tmp_path / "multi.yaml"
    manifests.write_text(
        """apiVersion: v1
kind: Service
metadata: {name: mock-2, labels: {app: mock}}
spec:
  ports: [{port: 99, protocol: TCP, targetPort: 9949}]
  selector: {app: mock}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: mock-2}
spec:
  replicas: 1
  selector: {app: mock}
  template:
    metadata: {labels: {app: mock}}
    spec: {containers: [{name: mock-container, image: busybox}]}
"""
    )
    utils.create_from_dict(
        api_client,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "mock-2"},
            "spec": {"ports": [{"port": 80}]},
        },
    )
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_yaml(api_client, str(manifests))
    assert str(e.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"services \\"mock-2\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"mock-2","kind":"services"},"code":409}\n'
    )
    # the ReplicationController after the conflict was created all the same
    assert (
        k8s.CoreV1Api(api_client).read_namespaced_replication_controller("mock-2", "default").spec.replicas
        == 1
    )


def test_a_crd_group_gets_its_api_service_and_the_dynamic_client_finds_it(api_client):
    ext = k8s.ApiextensionsV1Api(api_client)
    reg = k8s.ApiregistrationV1Api(api_client)
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {
                    "plural": "crontabs",
                    "singular": "crontab",
                    "kind": "CronTab",
                    "shortNames": ["ct"],
                },
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    svc = reg.read_api_service("v1.stable.example.com")
    assert (svc.spec.group, svc.spec.version, svc.spec.group_priority_minimum) == (
        "stable.example.com",
        "v1",
        1000,
    )
    assert svc.status.conditions[0].status == "True"
    dyn = DynamicClient(api_client)
    crontabs = dyn.resources.get(api_version="stable.example.com/v1", kind="CronTab")
    crontabs.create(
        body={
            "apiVersion": "stable.example.com/v1",
            "kind": "CronTab",
            "metadata": {"name": "c"},
            "spec": {"x": 1},
        },
        namespace="default",
    )
    assert [o.metadata.name for o in crontabs.get(namespace="default").items] == ["c"]
    # metadata-only for custom resources too
    _status, text = raw(
        api_client, "GET", "/apis/stable.example.com/v1/namespaces/default/crontabs", {"Accept": PARTIAL_LIST}
    )
    assert [i["kind"] for i in json.loads(text)["items"]] == ["PartialObjectMetadata"]
    ext.delete_custom_resource_definition("crontabs.stable.example.com")
    budget = Budget(10)
    while True:
        try:
            reg.read_api_service("v1.stable.example.com")
        except k8s.ApiException as e:
            assert e.status == 404
            break
        assert not budget.exhausted(), "the APIService of a deleted CRD stayed"
        time.sleep(0.05)


# ----- service account tokens


def test_token_requests_issue_tokens_the_emulator_accepts(api_client, emulator):
    core = k8s.CoreV1Api(api_client)
    tr = core.create_namespaced_service_account_token(
        "default", "default", {"spec": {"audiences": ["https://example.com"], "expirationSeconds": 900}}
    )
    token = tr.status.token
    assert token.count(".") == 2 and tr.spec.expiration_seconds == 900 and tr.status.expiration_timestamp
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:default:default" and claims["aud"] == [
        "https://example.com"
    ]
    # the token authenticates, as a bearer token of its own
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(emulator.kubeconfig), client_configuration=cfg)
    cfg.refresh_api_key_hook = None  # the kubeconfig's own token would come back
    cfg.api_key = {"BearerToken": token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    with k8s.ApiClient(cfg) as as_sa:
        assert k8s.CoreV1Api(as_sa).list_namespaced_pod("default").items == []
        cfg.api_key = {"BearerToken": token[:-2] + "xx"}
        with pytest.raises(k8s.ApiException) as e:
            k8s.CoreV1Api(as_sa).list_namespaced_pod("default")
        assert e.value.status == 401
    review = k8s.AuthenticationV1Api(api_client).create_token_review({"spec": {"token": token}})
    assert (
        review.status.authenticated and review.status.user.username == "system:serviceaccount:default:default"
    )
    assert "system:serviceaccounts:default" in review.status.user.groups
    assert (
        not k8s.AuthenticationV1Api(api_client)
        .create_token_review({"spec": {"token": "nope"}})
        .status.authenticated
    )
    sar = k8s.AuthorizationV1Api(api_client).create_subject_access_review(
        {
            "spec": {
                "user": "system:serviceaccount:default:default",
                "resourceAttributes": {"verb": "list", "resource": "pods"},
            }
        }
    )
    assert sar.status.allowed
    with pytest.raises(k8s.ApiException) as e:
        core.create_namespaced_service_account_token(
            "default", "default", {"spec": {"expirationSeconds": 60}}
        )
    assert e.value.status == 422 and "less than 10 minutes" in e.value.body
    with pytest.raises(k8s.ApiException) as e:
        core.create_namespaced_service_account_token("nope", "default", {"spec": {}})
    assert e.value.status == 404


# ----- the other built-in types a controller meets


def test_plain_built_in_types_are_served_with_their_zero_status(api_client):
    net = k8s.NetworkingV1Api(api_client)
    ing = net.create_namespaced_ingress(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        },
    )
    assert ing.status.load_balancer is not None
    pol = net.create_namespaced_network_policy(
        "default",
        {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}},
    )
    assert pol.spec.policy_types == ["Ingress"] and pol.spec.ingress[0].ports[0].protocol == "TCP"
    net.create_ingress_class({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})
    k8s.DiscoveryV1Api(api_client).create_namespaced_endpoint_slice(
        "default",
        {"metadata": {"name": "web-1"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]},
    )
    storage = k8s.StorageV1Api(api_client)
    sc = storage.create_storage_class({"metadata": {"name": "fast"}, "provisioner": "example.com/fast"})
    assert (sc.reclaim_policy, sc.volume_binding_mode) == ("Delete", "Immediate")
    va = storage.create_volume_attachment(
        {
            "metadata": {"name": "va"},
            "spec": {"attacher": "example.com", "nodeName": "n", "source": {"persistentVolumeName": "pv"}},
        }
    )
    assert va.status.attached is False
    core = k8s.CoreV1Api(api_client)
    pv = core.create_persistent_volume(
        {
            "metadata": {"name": "pv"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/x"},
            },
        }
    )
    assert (pv.status.phase, pv.spec.persistent_volume_reclaim_policy) == ("Pending", "Retain")
    pvc = core.create_namespaced_persistent_volume_claim(
        "default",
        {
            "metadata": {"name": "c"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    assert pvc.status.phase == "Pending"
    core.create_namespaced_pod_template("default", {"metadata": {"name": "t"}, "template": TEMPLATE})
    hpa = k8s.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 3,
            },
        },
    )
    assert hpa.status.desired_replicas == 0
    pdb = k8s.PolicyV1Api(api_client).create_namespaced_pod_disruption_budget(
        "default", {"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": SELECTOR}}
    )
    assert (pdb.status.disruptions_allowed, pdb.status.current_healthy, pdb.status.expected_pods) == (0, 0, 0)
    k8s.NodeV1Api(api_client).create_runtime_class({"metadata": {"name": "gvisor"}, "handler": "runsc"})
    assert [r.metadata.name for r in k8s.NodeV1Api(api_client).list_runtime_class().items] == ["gvisor"]
    assert k8s.CoreV1Api(api_client).list_namespaced_pod_template("default").items[0].metadata.name == "t"
    # namespaced ones go with their namespace
    core.create_namespace({"metadata": {"name": "gone"}})
    net.create_namespaced_ingress(
        "gone",
        {
            "metadata": {"name": "i"},
            "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 1}}}},
        },
    )
    core.delete_namespace("gone")
    budget = Budget(10)
    while net.list_namespaced_ingress("gone").items:
        assert not budget.exhausted(), "the ingress outlived its namespace"
        time.sleep(0.05)
    assert [i.metadata.name for i in net.list_ingress_for_all_namespaces().items] == ["web"]


# ----- with a simulated cluster behind the emulator


@pytest.fixture
def cluster_emulator(emulator: Emulator) -> Iterator[Emulator]:
    from fluxqueue.sim.cluster import ClusterSpec, SimCluster

    async def start() -> SimCluster:
        cluster = SimCluster(emulator.api, ClusterSpec(nodes=2, cpus=8, racks=1), time_scale=100)
        await cluster.start()
        return cluster

    cluster = emulator.run(start())
    try:
        yield emulator
    finally:
        emulator.run(cluster.stop())


def _until(what: str, check: Any, limit_s: float = 20) -> Any:
    budget = Budget(limit_s)
    while True:
        got = check()
        if got:
            return got
        assert not budget.exhausted(), f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_replication_controller_keeps_its_pods(cluster_emulator):
    with _client(cluster_emulator.kubeconfig) as c:
        core = k8s.CoreV1Api(c)
        core.create_namespaced_replication_controller(
            "default",
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "template": TEMPLATE},
            },
        )

        def pods() -> list[Any]:
            return [
                p
                for p in core.list_namespaced_pod("default", label_selector="app=a").items
                if not p.metadata.deletion_timestamp
            ]

        _until("two pods", lambda: len(pods()) == 2)
        owner = pods()[0].metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("ReplicationController", "web", True)
        _until(
            "two ready replicas",
            lambda: (
                core.read_namespaced_replication_controller_status("web", "default").status.ready_replicas
                == 2
            ),
        )
        core.patch_namespaced_replication_controller_scale("web", "default", {"spec": {"replicas": 1}})
        _until("one pod", lambda: len(pods()) == 1)
        core.delete_namespaced_replication_controller("web", "default", propagation_policy="Background")
        _until("no pods", lambda: not core.list_namespaced_pod("default", label_selector="app=a").items)


def test_the_legacy_bindings_collection_binds_a_pod(api_client):
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    core.create_node({"metadata": {"name": "n1"}})
    status, text = raw(
        api_client,
        "POST",
        "/api/v1/namespaces/default/bindings",
        {"Content-Type": "application/json"},
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "p"},
            "target": {"kind": "Node", "name": "n1"},
        },
    )
    assert status == 201, text
    assert core.read_namespaced_pod("p", "default").spec.node_name == "n1"
    # other verbs on it are no resource
    assert raw(api_client, "GET", "/api/v1/namespaces/default/bindings")[0] in (404, 405)


def test_tables_of_the_plain_types_have_kubectls_columns(api_client):
    k8s.StorageV1Api(api_client).create_storage_class(
        {"metadata": {"name": "fast"}, "provisioner": "example.com/fast"}
    )
    k8s.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 3,
            },
        },
    )
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    _s, text = raw(api_client, "GET", "/apis/storage.k8s.io/v1/storageclasses", accept)
    table = json.loads(text)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Provisioner",
        "ReclaimPolicy",
        "VolumeBindingMode",
        "AllowVolumeExpansion",
        "Age",
    ]
    assert table["rows"][0]["cells"][:4] == ["fast", "example.com/fast", "Delete", "Immediate"]
    _s, text = raw(
        api_client, "GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", accept
    )
    assert json.loads(text)["rows"][0]["cells"][1:6] == ["Deployment/web", "cpu: <unknown>/80%", 1, 3, 0]


# ----- pods/ephemeralcontainers (kubectl debug) and pods/resize


def test_ephemeral_containers_and_in_place_resize(api_client):
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "nginx:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    }
                ]
            },
        },
    )
    debug = {
        "spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox", "targetContainerName": "c"}]}
    }
    pod = core.patch_namespaced_pod_ephemeralcontainers("p", "default", debug)
    [ec] = pod.spec.ephemeral_containers
    assert (ec.name, ec.image_pull_policy, ec.termination_message_policy) == ("dbg", "Always", "File")
    assert pod.metadata.generation == 2
    assert (
        core.read_namespaced_pod_ephemeralcontainers("p", "default").spec.ephemeral_containers[0].name
        == "dbg"
    )
    with pytest.raises(k8s.ApiException) as e:  # existing ones stay as they are
        core.replace_namespaced_pod_ephemeralcontainers(
            "p",
            "default",
            {
                **api_client.sanitize_for_serialization(pod),
                "spec": {**api_client.sanitize_for_serialization(pod.spec), "ephemeralContainers": []},
            },
        )
    assert (
        e.value.status == 422 and 'existing ephemeral containers \\"dbg\\" may not be removed' in e.value.body
    )
    with pytest.raises(k8s.ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers(
            "p", "default", {"spec": {"ephemeralContainers": [{"name": "c", "image": "busybox"}]}}
        )
    assert e.value.status == 422 and "Duplicate value" in e.value.body
    # the main resource still refuses them
    with pytest.raises(k8s.ApiException) as e:
        core.patch_namespaced_pod(
            "p", "default", {"spec": {"ephemeralContainers": [{"name": "x", "image": "busybox"}]}}
        )
    assert e.value.status == 422
    resize = {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m"}}}]}}
    pod = core.patch_namespaced_pod_resize("p", "default", resize)
    assert pod.spec.containers[0].resources.requests == {"cpu": "250m", "memory": "64Mi"}
    assert pod.metadata.generation == 3
    assert (
        core.read_namespaced_pod_resize("p", "default").spec.containers[0].resources.requests["cpu"] == "250m"
    )
    with pytest.raises(k8s.ApiException) as e:  # Burstable -> Guaranteed
        core.patch_namespaced_pod_resize(
            "p",
            "default",
            {
                "spec": {
                    "containers": [{"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}]
                }
            },
        )
    assert e.value.status == 422 and "Pod QOS Class may not change as a result of resizing" in e.value.body
    with pytest.raises(k8s.ApiException) as e:
        core.patch_namespaced_pod_resize(
            "p",
            "default",
            {"spec": {"containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]}},
        )
    assert e.value.status == 422 and "only cpu and memory resources are mutable" in e.value.body
    # what else a resize carries is dropped, as podResizeStrategy does
    pod = core.patch_namespaced_pod_resize(
        "p", "default", {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    )
    assert pod.spec.containers[0].image == "nginx:1"


def test_list_options_resource_version_match_is_validated(api_client):
    core = k8s.CoreV1Api(api_client)
    with pytest.raises(k8s.ApiException) as e:
        core.list_namespaced_config_map("default", resource_version_match="NotOlderThan")
    assert e.value.status == 422
    assert json.loads(e.value.body)["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
    )
    with pytest.raises(k8s.ApiException) as e:
        core.list_namespaced_config_map("default", resource_version="0", resource_version_match="Newest")
    assert e.value.status == 422 and "Unsupported value" in e.value.body
    assert (
        core.list_namespaced_config_map(
            "default", resource_version="0", resource_version_match="NotOlderThan"
        ).items
        == []
    )
