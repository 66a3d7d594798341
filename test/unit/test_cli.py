import subprocess
import sys

from fluxqueue import __version__


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fluxqueue", *args], capture_output=True, text=True, timeout=60
    )


def test_version_is_printed():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fluxqueue {__version__}"


def test_help_lists_migrate():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "migrate" in result.stdout


def test_missing_dsn_is_one_clear_line_not_a_traceback():
    result = run_cli("migrate", "--dsn", "")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "fluxqueue: error: no database given: pass --dsn or set FLUXQUEUE_DSN"
    ]


def test_unreachable_database_is_a_clear_error():
    result = run_cli("migrate", "--dsn", "postgresql://nobody@127.0.0.1:1/nowhere")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("fluxqueue: error: cannot migrate database")
