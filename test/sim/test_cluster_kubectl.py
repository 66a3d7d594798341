"""`fluxqueue sim apiserver` as a real process, driven by the real kubectl: nodes, a Job that runs to
completion, and a pod bound by hand through the binding subresource."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from support.clitools import run_tool

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  completions: 2
  parallelism: 2
  template:
    metadata:
      annotations:
        sim.fluxqueue.io/runtime: "30s"
    spec:
      nodeName: node-001
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        resources:
          requests:
            cpu: "1"
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: by-hand
  annotations:
    sim.fluxqueue.io/runtime: "10s"
spec:
  schedulerName: fluxqueue
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
"""


@pytest.fixture
async def sim_process(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluxqueue",
        "sim",
        "apiserver",
        "--nodes",
        "3",
        "--cpus",
        "8",
        "--memory",
        "16Gi",
        "--racks",
        "3",
        "--time-scale",
        "20",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ),
    )
    banner = ""
    try:
        deadline = time.monotonic() + 30
        while "kubectl get nodes" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            if not line:
                raise AssertionError(f"sim apiserver exited early:\n{banner}")
            banner += line.decode()
        yield kubeconfig, banner
    finally:
        proc.send_signal(2)  # Ctrl-C: a clean shutdown
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_sim_apiserver_with_real_kubectl(sim_process, tools):
    kubeconfig, banner = sim_process
    assert f"export KUBECONFIG={kubeconfig}" in banner

    async def kubectl(*args, stdin=None, check=True):
        return await run_tool(
            tools.kubectl, *args, kubeconfig=kubeconfig, stdin=stdin, limit_s=60, check=check
        )

    nodes = json.loads((await kubectl("get", "nodes", "-o", "json")).stdout)["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["node-000", "node-001", "node-002"]
    assert [n["metadata"]["labels"]["fluxqueue.io/rack"] for n in nodes] == ["rack-0", "rack-1", "rack-2"]
    table = (await kubectl("get", "nodes")).stdout
    assert table.count(" Ready ") == 3

    await kubectl("apply", "-f", "-", stdin=JOB)
    done = await kubectl("wait", "--for=condition=Complete", "job/hello", "--timeout=30s")
    assert "condition met" in done.stdout
    pods = json.loads(
        (await kubectl("get", "pods", "-l", "batch.kubernetes.io/job-name=hello", "-o", "json")).stdout
    )
    assert [p["status"]["phase"] for p in pods["items"]] == ["Succeeded", "Succeeded"]

    await kubectl("apply", "-f", "-", stdin=POD)
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "by-hand"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-002"},
    }
    await kubectl(
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/by-hand/binding",
        "-f",
        "-",
        stdin=json.dumps(binding),
    )
    out = await kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/by-hand", "--timeout=30s")
    assert "condition met" in out.stdout
    wide = (await kubectl("get", "pod", "by-hand", "-o", "wide")).stdout
    assert "node-002" in wide and "Completed" in wide
