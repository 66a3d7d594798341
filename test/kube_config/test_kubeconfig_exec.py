"""Exec credential plugins run by fluxqueue.kube.config: off the event loop, with no stdin, and killed (with
what they started) when they do not answer in time. Real plugins (small Python scripts), a real API
emulator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.credentials import kubeconfig_with_user
from support.polling import eventually

from fluxqueue.errors import ConfigError
from fluxqueue.kube import config as config_module
from fluxqueue.kube.client import PODS, APIError, KubeClient
from fluxqueue.sim.apiserver import APIServer

# Prints an ExecCredential with the token argv[2] (or the one in the file argv[2]), after reading stdin to its end (a plugin that would
# prompt) and sleeping argv[3] seconds (or as many as the file argv[3] says); records what it was told in
# argv[1].
SLOW_PLUGIN = """
import json, os, sys, time
out = sys.argv[1]
stdin = sys.stdin.read() if sys.stdin is not None else ""
with open(out, "w") as f:
    json.dump({"stdin": stdin, "info": json.loads(os.environ["KUBERNETES_EXEC_INFO"])}, f)
delay = sys.argv[3]
time.sleep(float(open(delay).read() if os.path.exists(delay) else delay))
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": open(sys.argv[2]).read() if os.path.exists(sys.argv[2]) else sys.argv[2]},
}))
"""

# Never answers: starts a helper (as sign-in plugins start browsers or agents), writes both pids, sleeps.
HANGING_PLUGIN = """
import os, subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {helper.pid}")
time.sleep(600)
"""


@pytest.fixture
async def api():
    server = APIServer()
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.stop()


def exec_user(script: Path, *args: str) -> dict:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script), *args],
            "interactiveMode": "Never",
        }
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_slow_plugin_runs_off_the_event_loop_without_stdin(api, tmp_path):
    script = tmp_path / "plugin.py"
    script.write_text(SLOW_PLUGIN)
    seen = tmp_path / "seen.json"
    kubeconfig = kubeconfig_with_user(
        api, tmp_path / "kubeconfig", exec_user(script, str(seen), api.token, "1")
    )
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    start = time.monotonic()
    try:
        client = await KubeClient.from_kubeconfig(kubeconfig, qps=0, burst=1)
    finally:
        ticker.cancel()
    elapsed = time.monotonic() - start
    async with client:
        assert (await client.list(PODS, namespace="default"))["items"] == []
    assert elapsed >= 1.0
    # The loop went on while the plugin slept: about one tick per 10 ms (a blocked loop would give ~0).
    assert ticks >= 30, ticks
    told = json.loads(seen.read_text())
    assert told["stdin"] == ""  # end-of-file at once: nothing to wait for
    assert told["info"]["spec"]["interactive"] is False
    assert told["info"]["apiVersion"] == "client.authentication.k8s.io/v1"


async def test_a_hanging_plugin_is_a_one_line_error_and_is_killed_with_its_helpers(
    api, tmp_path, monkeypatch
):
    script = tmp_path / "hang.py"
    script.write_text(HANGING_PLUGIN)
    pids = tmp_path / "pids"
    kubeconfig = kubeconfig_with_user(api, tmp_path / "kubeconfig", exec_user(script, str(pids)))
    monkeypatch.setenv("FLUXQUEUE_EXEC_TIMEOUT", "1.5")
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(kubeconfig)
    assert time.monotonic() - start < 10
    assert str(err.value) == (
        f"kubeconfig {kubeconfig}: the credential plugin {sys.executable!r} did not answer within 1.5 s "
        "(FLUXQUEUE_EXEC_TIMEOUT)"
    )
    plugin_pid, helper_pid = map(int, pids.read_text().split())
    await eventually(lambda: not alive(plugin_pid) and not alive(helper_pid), limit_s=5)


async def test_a_plugin_hanging_on_renewal_holds_a_request_up_for_the_timeout_only(
    api, tmp_path, monkeypatch
):
    script = tmp_path / "plugin.py"
    script.write_text(SLOW_PLUGIN)
    delay = tmp_path / "delay"
    delay.write_text("0")
    token = tmp_path / "token"
    token.write_text(api.token)
    user = exec_user(script, str(tmp_path / "seen.json"), str(token), str(delay))
    kubeconfig = kubeconfig_with_user(api, tmp_path / "kubeconfig", user)
    monkeypatch.setenv("FLUXQUEUE_EXEC_TIMEOUT", "0.5")
    async with await KubeClient.from_kubeconfig(kubeconfig, qps=0, burst=1) as c:
        await c.list(PODS, namespace="default")
        # The plugin now takes a minute and the token it handed out is refused: renewing times out, the
        # request is answered 401 and the client goes on (no hang).
        delay.write_text("60")
        api.token = "rotated-" + api.token
        start = time.monotonic()
        with pytest.raises(APIError) as refused:
            await c.list(PODS, namespace="default")
        assert refused.value.code == 401
        assert time.monotonic() - start < 10
        # The plugin answers again: the next refusal renews, and the request goes through.
        token.write_text(api.token)
        delay.write_text("0")
        await asyncio.sleep(config_module.REFUSED_RENEWAL_INTERVAL_S)
        assert (await c.list(PODS, namespace="default"))["items"] == []


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf"])
async def test_an_unusable_exec_timeout_is_one_line(api, tmp_path, monkeypatch, value):
    script = tmp_path / "plugin.py"
    script.write_text(SLOW_PLUGIN)
    user = exec_user(script, str(tmp_path / "seen.json"), api.token, "0")
    kubeconfig = kubeconfig_with_user(api, tmp_path / "kubeconfig", user)
    monkeypatch.setenv("FLUXQUEUE_EXEC_TIMEOUT", value)
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(kubeconfig)
    assert str(err.value) == (
        f"kubeconfig {kubeconfig}: FLUXQUEUE_EXEC_TIMEOUT must be a positive number of seconds, got {value!r}"
    )


async def test_a_plugin_printing_no_credential_is_one_line(api, tmp_path):
    script = tmp_path / "plugin.py"
    script.write_text("print('signed in!')\n")
    kubeconfig = kubeconfig_with_user(api, tmp_path / "kubeconfig", exec_user(script))
    with pytest.raises(ConfigError) as err:
        await KubeClient.from_kubeconfig(kubeconfig)
    assert str(err.value) == (
        f"kubeconfig {kubeconfig}: exec: the plugin {sys.executable!r} printed no JSON ExecCredential"
    )


async def test_the_controller_command_with_a_hanging_plugin_prints_one_line(api, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANGING_PLUGIN)
    kubeconfig = kubeconfig_with_user(api, tmp_path / "kubeconfig", exec_user(script, str(tmp_path / "pids")))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluxqueue",
        "controller",
        "--kubeconfig",
        str(kubeconfig),
        "--webhook-port",
        "-1",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={
            "PATH": "/usr/bin:/bin",
            "FLUXQUEUE_DSN": "postgresql://nobody@127.0.0.1:1/none",
            "FLUXQUEUE_EXEC_TIMEOUT": "1",
        },
    )
    async with asyncio.timeout(60):
        _, stderr = await proc.communicate()
    assert proc.returncode == 2, stderr
    assert stderr.decode().strip().splitlines() == [
        f"fluxqueue: error: kubeconfig {kubeconfig}: the credential plugin {sys.executable!r} did not answer "
        "within 1 s (FLUXQUEUE_EXEC_TIMEOUT)"
    ]
