"""Credentials as users' kubeconfigs hold them, for tests against the API emulator."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml


def kubeconfig_with_user(api, path: Path, user: dict) -> Path:
    """``api``'s kubeconfig with another ``user`` entry, written to ``path``."""
    doc = api.kubeconfig()
    doc["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(doc))
    return path


# An exec credential plugin (client.authentication.k8s.io), as EKS, GKE, AKS and OIDC sign-in kubeconfigs
# name: it prints the token in <dir>/token, with <dir>/expiry as its expirationTimestamp if that file
# exists, and counts its runs in <dir>/runs.
PLUGIN = """
import json, os, pathlib, sys
d = pathlib.Path(sys.argv[1])
with open(d / "runs", "a") as f:
    f.write("run\\n")
if (d / "fail").exists():
    sys.exit((d / "fail").read_text())
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
status = {"token": (d / "token").read_text().strip()}
if (d / "expiry").exists():
    status["expirationTimestamp"] = (d / "expiry").read_text().strip()
print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}))
"""


class ExecPlugin:
    """The plugin, handing out ``api``'s token, and a kubeconfig (``.kubeconfig``) whose user runs it."""

    def __init__(self, api, tmp_path: Path):
        self.dir = tmp_path / "plugin"
        self.dir.mkdir()
        (self.dir / "plugin.py").write_text(PLUGIN)
        self.hand_out(api.token)
        self.kubeconfig = kubeconfig_with_user(
            api,
            tmp_path / "exec.kubeconfig",
            {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": sys.executable,
                    "args": [str(self.dir / "plugin.py"), str(self.dir)],
                    "interactiveMode": "Never",
                }
            },
        )

    def hand_out(self, token: str, expires_in: float | None = None) -> None:
        (self.dir / "token").write_text(token)
        if expires_in is not None:
            at = datetime.now(UTC) + timedelta(seconds=expires_in)
            (self.dir / "expiry").write_text(at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    @property
    def runs(self) -> int:
        path = self.dir / "runs"
        return len(path.read_text().splitlines()) if path.exists() else 0
