"""The controller's Kubernetes client against the API emulator over HTTPS: verbs, watches that survive 410,
aggregated Events, Lease leader election, and the credentials users' kubeconfigs hold (token files, exec
credential plugins with and without expiry, the in-cluster service account)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml
from support.credentials import ExecPlugin, kubeconfig_with_user
from support.polling import eventually

from fluxqueue.errors import ConfigError
from fluxqueue.kube import config as config_module
from fluxqueue.kube.client import EVENTS, PODS, APIError, KubeClient, TokenBucket
from fluxqueue.kube.events import EventRecorder
from fluxqueue.kube.leader import LeaderElector
from fluxqueue.kube.watch import Informer
from fluxqueue.sim.apiserver import APIServer


@pytest.fixture
async def client(tmp_path):
    api = APIServer()
    await api.start(host="127.0.0.1", port=0)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    c = await KubeClient.from_kubeconfig(kubeconfig, qps=500, burst=500)
    try:
        yield c
    finally:
        await c.close()
        await api.stop()


def a_pod(name):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


async def test_verbs_return_objects_and_errors_carry_the_status_code(client):
    created = await client.create(PODS, a_pod("p"), namespace="default")
    assert created["metadata"]["uid"]
    patched = await client.patch(PODS, "p", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
    assert patched["metadata"]["labels"] == {"a": "b"}
    patched = await client.patch(
        PODS,
        "p",
        [{"op": "add", "path": "/metadata/labels/c", "value": "d"}],
        namespace="default",
        patch_type="json",
    )
    assert patched["metadata"]["labels"]["c"] == "d"
    listed = await client.list(PODS, namespace="default", label_selector="a=b")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p"]
    with pytest.raises(APIError) as err:
        await client.create(PODS, a_pod("p"), namespace="default")
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"
    await client.delete(PODS, "p", namespace="default")
    with pytest.raises(APIError) as err:
        await client.get(PODS, "p", namespace="default")
    assert err.value.code == 404


async def test_an_informer_relists_after_410_and_reports_what_it_missed_as_events(client):
    seen = []
    informer = Informer(
        client, PODS, lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"])), namespace="default"
    )
    await client.create(PODS, a_pod("before"), namespace="default")
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert ("ADDED", "before") in seen
        # Pretend our version expired while disconnected: the next watch gets 410 and must relist.
        informer._rv = "1"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.delete(PODS, "before", namespace="default")
        await client.create(PODS, a_pod("after"), namespace="default")
        task = asyncio.create_task(informer.run())
        await eventually(lambda: ("DELETED", "before") in seen and ("ADDED", "after") in seen)
        assert set(informer.cache) == {"default/after"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_informer_index_follows_label_changes_deletions_and_relists(client):
    def by_team(pod):
        team = (pod["metadata"].get("labels") or {}).get("team")
        return [team] if team else []

    informer = Informer(client, PODS, namespace="default", indexers={"team": by_team})
    for name, team in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        await client.create(
            PODS, {**a_pod(name), "metadata": {"name": name, "labels": {"team": team}}}, namespace="default"
        )
    task = asyncio.create_task(informer.run())

    async def names_of(team, expected):
        def got():
            return sorted(p["metadata"]["name"] for p in informer.by_index("team", team))

        with contextlib.suppress(AssertionError):
            await eventually(lambda: got() == expected)
        return got()

    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert await names_of("a", ["a1", "a2"]) == ["a1", "a2"]
        await client.patch(PODS, "a2", {"metadata": {"labels": {"team": "b"}}}, namespace="default")
        assert await names_of("b", ["a2", "b1"]) == ["a2", "b1"]
        assert await names_of("a", ["a1"]) == ["a1"]
        await client.delete(PODS, "a1", namespace="default")
        assert await names_of("a", []) == []
        assert "a" not in informer._indices["team"]  # no empty buckets left behind
        informer._rv = "1"  # a relist rebuilds the index from the fresh listing
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.delete(PODS, "b1", namespace="default")
        task = asyncio.create_task(informer.run())
        assert await names_of("b", ["a2"]) == ["a2"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_changes_after_the_first_listing_wait_for_a_handler_set_later(client):
    await client.create(PODS, a_pod("listed"), namespace="default")
    informer = Informer(client, PODS, namespace="default", queue_until_handler=True)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        # A controller's start-up sweep runs here, before it sets its handlers; meanwhile a pod arrives.
        await client.create(PODS, a_pod("during-sweep"), namespace="default")
        await eventually(lambda: "default/during-sweep" in informer.cache)
        seen = []
        informer.handler = lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"]))
        await eventually(lambda: seen)
        # The listed pod is the sweep's business; the one created during it is delivered, not dropped.
        assert seen == [("ADDED", "during-sweep")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_repeated_events_are_aggregated_into_one_with_a_count(client):
    pod = await client.create(PODS, a_pod("p"), namespace="default")
    recorder = EventRecorder(client)
    for _ in range(3):
        await recorder.record(pod, "Waiting", "position 2 in the queue")
    await recorder.record(pod, "Scheduled", "Scheduled on node-001")
    events = (await client.list(EVENTS, namespace="default"))["items"]
    counts = {e["reason"]: e["count"] for e in events}
    assert counts == {"Waiting": 3, "Scheduled": 1}
    assert all(e["involvedObject"]["uid"] == pod["metadata"]["uid"] for e in events)


async def test_one_leader_at_a_time_and_a_standby_takes_over_when_the_lease_expires(client):
    fast = dict(lease_duration=1.0, renew_deadline=0.8, retry_period=0.1)
    a = LeaderElector(client, "default", identity="a", **fast)
    b = LeaderElector(client, "default", identity="b", **fast)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.try_acquire_or_renew()  # renewal
    await asyncio.sleep(1.2)  # a stops renewing (crashed): the lease runs out
    assert await b.try_acquire_or_renew()
    assert not await a.try_acquire_or_renew()
    await b.release()
    assert await a.try_acquire_or_renew()  # released: no need to wait


async def test_the_token_bucket_holds_requests_to_the_configured_rate():
    bucket = TokenBucket(qps=50, burst=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(15):
        await bucket.acquire()
    # 5 from the burst, then 10 at 50/s: at least 0.2 s.
    assert loop.time() - start >= 0.18


@pytest.fixture
async def api():
    server = APIServer()
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.stop()


async def test_a_token_kept_in_a_file_is_read_again_when_it_rotates(api, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(api.token + "\n")
    kubeconfig = kubeconfig_with_user(api, tmp_path / "kubeconfig", {"tokenFile": str(token_file)})
    monkeypatch.setattr(config_module, "TOKEN_FILE_PERIOD_S", 0.0)  # read again before every request
    async with await KubeClient.from_kubeconfig(kubeconfig, qps=0, burst=1) as c:
        await c.create(PODS, a_pod("p"), namespace="default")
        good = token_file.read_text()
        token_file.write_text("not-a-token\n")  # kubelet rotated it (to one the server refuses here)
        with pytest.raises(APIError) as refused:
            await c.get(PODS, "p", namespace="default")
        assert refused.value.code == 401
        token_file.write_text(good)
        assert (await c.get(PODS, "p", namespace="default"))["metadata"]["name"] == "p"


async def test_an_exec_plugin_authenticates_and_runs_once_while_its_credential_has_no_expiry(api, tmp_path):
    plugin = ExecPlugin(api, tmp_path)
    async with await KubeClient.from_kubeconfig(plugin.kubeconfig, qps=0, burst=1) as c:
        await c.create(PODS, a_pod("p"), namespace="default")
        for _ in range(5):
            await c.get(PODS, "p", namespace="default")
        informer = Informer(c, PODS, namespace="default")
        task = asyncio.create_task(informer.run())
        try:
            await asyncio.wait_for(informer.synced.wait(), 5)
            assert set(informer.cache) == {"default/p"}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert plugin.runs == 1


async def test_an_exec_credential_the_server_refuses_is_fetched_again_and_the_request_retried(
    api, tmp_path, monkeypatch
):
    plugin = ExecPlugin(api, tmp_path)
    monkeypatch.setattr(config_module, "REFUSED_RENEWAL_INTERVAL_S", 0.0)  # two refusals a moment apart
    async with await KubeClient.from_kubeconfig(plugin.kubeconfig, qps=0, burst=1) as c:
        await c.create(PODS, a_pod("p"), namespace="default")
        # The identity provider revoked the token and hands out another one.
        api.token = "rotated-" + api.token
        plugin.hand_out(api.token)
        assert (await c.get(PODS, "p", namespace="default"))["metadata"]["name"] == "p"
        assert plugin.runs == 2
        # A watch refused is opened again with the renewed credential.
        api.token = "watched-" + api.token
        plugin.hand_out(api.token)
        events = c.watch(PODS, namespace="default", timeout_seconds=5)
        first = await anext(events)
        await events.aclose()
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "p"
        assert plugin.runs == 3
        # Concurrent requests refused together fetch one new credential between them.
        api.token = "again-" + api.token
        plugin.hand_out(api.token)
        got = await asyncio.gather(*(c.get(PODS, "p", namespace="default") for _ in range(8)))
        assert {g["metadata"]["name"] for g in got} == {"p"}
        assert plugin.runs == 4


async def test_an_expiring_exec_credential_is_fetched_again_before_it_expires(api, tmp_path):
    plugin = ExecPlugin(api, tmp_path)
    plugin.hand_out(api.token, expires_in=600)
    async with await KubeClient.from_kubeconfig(plugin.kubeconfig, qps=0, burst=1) as c:
        await c.create(PODS, a_pod("p"), namespace="default")
        await c.get(PODS, "p", namespace="default")
        assert plugin.runs == 1 and not c.config.due()  # valid for ten minutes: used as it is
    plugin.hand_out(api.token, expires_in=3)
    async with await KubeClient.from_kubeconfig(plugin.kubeconfig, qps=0, burst=1) as c:
        assert plugin.runs == 2
        # Due ahead of its expiry (half of a short lifetime): the next request fetches a new credential
        # before it is sent, so a server that no longer takes the old one never has to refuse it.
        await eventually(c.config.due, limit_s=5)
        api.token = "next-" + api.token
        plugin.hand_out(api.token, expires_in=600)
        await c.get(PODS, "p", namespace="default")
        assert plugin.runs == 3
        assert c.config._refused_at < 0  # never refused
        await c.get(PODS, "p", namespace="default")
        assert plugin.runs == 3


async def test_a_plugin_handing_out_an_expired_credential_is_not_run_again_at_once(api, tmp_path):
    plugin = ExecPlugin(api, tmp_path)
    plugin.hand_out(api.token, expires_in=-60)
    async with await KubeClient.from_kubeconfig(plugin.kubeconfig, qps=0, burst=1) as c:
        assert not c.config.due()  # at most once a second, not before every request
        await eventually(c.config.due, limit_s=5)
        await c.list(PODS, namespace="default")
        assert plugin.runs == 2 and not c.config.due()


async def test_a_failing_exec_plugin_at_start_is_one_clear_error_and_later_keeps_the_last_credential(
    api, tmp_path
):
    plugin = ExecPlugin(api, tmp_path)
    (plugin.dir / "fail").write_text("sign-in required: run `cloud auth login`")
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(plugin.kubeconfig)
    assert str(err.value) == (
        f"kubeconfig {plugin.kubeconfig}: exec: process returned 1. sign-in required: run `cloud auth login`"
    )
    (plugin.dir / "fail").unlink()
    plugin.hand_out(api.token, expires_in=0.5)
    async with await KubeClient.from_kubeconfig(plugin.kubeconfig, qps=0, burst=1) as c:
        (plugin.dir / "fail").write_text("the identity provider is down")
        await eventually(c.config.due, limit_s=5)
        # The renewal fails: the request goes on with the credential it has (still accepted here), and the
        # plugin is not run again on every request.
        for _ in range(3):
            await c.list(PODS, namespace="default")
        assert plugin.runs == 3


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("clusters: [", "not valid YAML"),
        (
            {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "current-context": "x"},
            "Invalid kube-config file. Expected object with name x in {path}/contexts list",
        ),
    ],
)
async def test_an_unusable_kubeconfig_is_one_line(tmp_path, content, message):
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(path)
    assert str(err.value) == f"kubeconfig {path}: {message.format(path=path)}"


@pytest.mark.parametrize("problem", ["missing file", "missing plugin"])
def test_the_controller_command_with_an_unusable_kubeconfig_prints_one_line(tmp_path, problem):
    path = tmp_path / "kubeconfig"
    expected = f"fluxqueue: error: kubeconfig {path}: not found"
    if problem == "missing plugin":
        doc = {
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [
                {
                    "name": "u",
                    "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "no-auth"}},
                }
            ],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        path.write_text(yaml.safe_dump(doc))
        expected = f"fluxqueue: error: kubeconfig {path}: the credential plugin 'no-auth' was not found"
    proc = subprocess.run(
        [sys.executable, "-m", "fluxqueue", "controller", "--kubeconfig", str(path), "--webhook-port", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "FLUXQUEUE_DSN": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [expected]


async def test_the_in_cluster_service_account_is_read_and_its_token_file_read_again(
    api, tmp_path, monkeypatch
):
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    ca = api.kubeconfig()["clusters"][0]["cluster"]["certificate-authority-data"]
    (sa / "ca.crt").write_bytes(base64.b64decode(ca))
    (sa / "token").write_text(api.token)
    (sa / "namespace").write_text("default")
    monkeypatch.setattr(config_module, "SERVICE_ACCOUNT_DIR", sa)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(urlsplit(api.url).port))
    async with await KubeClient.from_kubeconfig(None, qps=0, burst=1) as c:
        await c.create(PODS, a_pod("p"), namespace="default")
        assert not c.config.due()  # read again once a minute
        api.token = "projected-" + api.token
        (sa / "token").write_text(api.token)
        # Refused: read again at once, and the request retried.
        assert (await c.get(PODS, "p", namespace="default"))["metadata"]["name"] == "p"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(None)
    assert "pass --kubeconfig" in str(err.value)
