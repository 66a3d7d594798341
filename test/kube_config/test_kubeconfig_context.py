"""Choosing a kubeconfig context (``--context``, ``FLUXQUEUE_CONTEXT``) and KUBECONFIG-style lists of files,
against two API emulators: which one answers proves which context was used."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import yaml

from fluxqueue.errors import ConfigError
from fluxqueue.kube.client import NAMESPACES, KubeClient
from fluxqueue.sim.apiserver import APIServer


@pytest.fixture
async def two():
    apis = [APIServer(), APIServer()]
    for api in apis:
        await api.start(host="127.0.0.1", port=0)
    # Each cluster is told apart by a namespace only it has.
    await apis[0].client.create(NAMESPACES, {"metadata": {"name": "only-in-a"}})
    await apis[1].client.create(NAMESPACES, {"metadata": {"name": "only-in-b"}})
    try:
        yield apis
    finally:
        for api in apis:
            await api.stop()


def entries(api, name: str) -> dict:
    doc = api.kubeconfig(name)
    doc["users"][0]["name"] = f"admin-{name}"
    doc["contexts"][0]["context"]["user"] = f"admin-{name}"
    return doc


def combined(a, b, current: str = "a") -> dict:
    doc, other = entries(a, "a"), entries(b, "b")
    for item in ("clusters", "users", "contexts"):
        doc[item] += other[item]
    doc["current-context"] = current
    return doc


async def which(client: KubeClient) -> set[str]:
    names = {n["metadata"]["name"] for n in (await client.list(NAMESPACES))["items"]}
    return names & {"only-in-a", "only-in-b"}


async def test_a_context_other_than_the_current_one_is_used_when_named(two, tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(combined(*two)))
    monkeypatch.delenv("FLUXQUEUE_CONTEXT", raising=False)
    async with await KubeClient.from_kubeconfig(path) as c:
        assert await which(c) == {"only-in-a"}
    async with await KubeClient.from_kubeconfig(path, "b") as c:
        assert c.config.server == two[1].url
        assert await which(c) == {"only-in-b"}
    monkeypatch.setenv("FLUXQUEUE_CONTEXT", "b")  # what the controller's --context sets
    async with await KubeClient.from_kubeconfig(path) as c:
        assert await which(c) == {"only-in-b"}


async def test_an_unknown_context_is_one_line_naming_the_ones_there(two, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(combined(*two)))
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(path, "prod")
    assert str(err.value) == f"kubeconfig {path}: context 'prod' not found; the contexts there: a, b"
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(None, "b")
    assert str(err.value) == "context 'b' needs a kubeconfig (pass --kubeconfig)"


async def test_a_kubeconfig_list_merges_its_files_and_the_first_current_context_wins(two, tmp_path):
    # kubectl: the first file to set current-context names it; the first to name a cluster, user or
    # context defines it.
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(yaml.safe_dump(entries(two[1], "b")))
    doc = entries(two[0], "a")
    doc["clusters"].append({"name": "b", "cluster": {"server": "https://127.0.0.1:1"}})  # shadowed
    second.write_text(yaml.safe_dump(doc))
    paths = f"{first}{os.pathsep}{second}"
    async with await KubeClient.from_kubeconfig(paths) as c:
        assert await which(c) == {"only-in-b"}
    async with await KubeClient.from_kubeconfig(paths, "a") as c:
        assert await which(c) == {"only-in-a"}


def run_controller(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fluxqueue", "controller", *args, "--webhook-port", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "FLUXQUEUE_DSN": "postgresql://nobody@127.0.0.1:1/none", **env},
    )


async def test_the_controller_command_takes_context_and_reports_an_unknown_one_in_one_line(two, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(combined(*two)))
    proc = await asyncio.to_thread(run_controller, "--kubeconfig", str(path), "--context", "prod", env={})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"fluxqueue: error: kubeconfig {path}: context 'prod' not found; the contexts there: a, b"
    ]
    # KUBECONFIG (a list: a file not there is skipped, as kubectl does) and FLUXQUEUE_CONTEXT, as the
    # environment gives them.
    listed = f"{tmp_path / 'missing'}{os.pathsep}{path}"
    proc = await asyncio.to_thread(run_controller, env={"KUBECONFIG": listed, "FLUXQUEUE_CONTEXT": "staging"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"fluxqueue: error: kubeconfig {listed}: context 'staging' not found; the contexts there: a, b"
    ]


async def test_a_kubeconfig_list_none_of_whose_files_is_there_is_one_line(tmp_path):
    listed = f"{tmp_path / 'one'}{os.pathsep}{tmp_path / 'two'}"
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(listed)
    assert str(err.value) == f"kubeconfig {listed}: none of these files is there"
