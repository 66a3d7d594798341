"""fluxqueue as a new user installs it: the wheel, in a fresh virtualenv, with `[sim]`, run from an empty
directory with nothing but that virtualenv on PATH (no helm, no kubectl, no npm, no checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(argv: list, *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{argv[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv holding the wheel built from this source tree, with its [sim] extra from the index."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = (
        tmp / "source"
    )  # a copy: building in the checkout would leave build/ behind and race other builds
    shutil.copytree(REPO / "fluxqueue", source / "fluxqueue", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "-q", "--wheel-dir", tmp / "dist", source], timeout=300)
    (wheel,) = (tmp / "dist").glob("fluxqueue-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    # pip's own cache (under HOME) is reused: a warm cache installs in seconds.
    _run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[sim]"], timeout=600
    )
    return venv


def _user_env(venv: Path, home: Path) -> dict[str, str]:
    path = str(venv / "bin")
    for tool in ("helm", "kubectl", "npm"):
        assert shutil.which(tool, path=path) is None, tool
    home.mkdir(exist_ok=True)
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}


@pytest.mark.timeout(900)
def test_installed_wheel_runs_a_simulation_to_a_report_from_an_empty_directory(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [installed / "bin" / "fluxqueue", "sim", "run", "--nodes", "4", "--cpus", "8", "--jobs", "10"]
    argv += ["--time-scale", "600", "--timeout", "120", "--no-progress"]
    out = _run(argv, timeout=300, cwd=empty, env=_user_env(installed, tmp_path / "home")).stdout
    assert "invariants: OK" in out
    report = json.loads((empty / "sim-report" / "report.json").read_text())
    assert report["units"] == {"submitted": 10, "finished": 10, "failed": 0, "lost": 0}
    assert report["violation_count"] == 0


@pytest.mark.timeout(300)
def test_installed_wheel_carries_every_migration(installed):
    listing = "from fluxqueue.queue.migrate import discover; print(' '.join(m.path.name for m in discover()))"
    out = _run([installed / "bin" / "python", "-c", listing], timeout=60, cwd="/").stdout.split()
    assert out == sorted(p.name for p in (REPO / "fluxqueue" / "queue" / "migrations").glob("*.sql"))


@pytest.mark.timeout(300)
def test_a_missing_migrations_directory_is_one_clear_line(installed, tmp_path):
    env = {**_user_env(installed, tmp_path / "home"), "FLUXQUEUE_MIGRATIONS": str(tmp_path / "nowhere")}
    result = subprocess.run(
        [installed / "bin" / "fluxqueue", "sim", "run", "--nodes", "1", "--jobs", "1", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"fluxqueue: error: migrations directory not found: {tmp_path / 'nowhere'} (check FLUXQUEUE_MIGRATIONS)"
    )


@pytest.mark.timeout(120)
def test_a_report_directory_that_cannot_be_made_is_one_clear_line_before_anything_starts(installed, tmp_path):
    (tmp_path / "file").write_text("")
    result = subprocess.run(
        [installed / "bin" / "fluxqueue", "sim", "run", "--jobs", "1", "--report", tmp_path / "file" / "r"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_user_env(installed, tmp_path / "home"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "starting PostgreSQL" not in result.stdout
    assert result.stderr.strip() == (
        f"fluxqueue: error: --report {tmp_path / 'file' / 'r'}: cannot create the directory: Not a directory"
    )
