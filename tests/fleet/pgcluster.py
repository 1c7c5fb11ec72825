"""A private PostgreSQL cluster (initdb + pg_ctl in a temp folder, a free port) that a
test may stop and start: never the shared server on 5432."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from scale.cluster import free_port

BIN_CANDIDATES = ("/usr/local/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def _binary(name: str) -> str | None:
    for folder in BIN_CANDIDATES:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    return shutil.which(name)


class PrivatePostgres:
    """``start()``, ``stop()``, ``url``; as the ``postgres`` user when run as root."""

    def __init__(self, root: Path) -> None:
        initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run it as postgres, in a folder it
            # can reach (pytest's temp folders are private to root)
            root = Path(tempfile.mkdtemp(prefix="sticker-maker-pg-"))
            shutil.chown(root, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nfsync = off\nmax_connections = 50\n"
            )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> None:
        log = str(self.root / "server.log")
        self._run(self.pg_ctl, "-D", str(self.data), "-l", log, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        if self._as_user:
            shutil.rmtree(self.root, ignore_errors=True)
