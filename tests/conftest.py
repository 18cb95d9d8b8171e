"""Shared fixtures: the two stacks every service test runs against.

* ``embedded``: SQLite, local object directory, filesystem Celery queue — the default a
  new user gets with no server installed;
* ``services``: a fresh PostgreSQL database, SeaweedFS as the S3 server (object lock),
  Redis as the Celery broker — the production configuration.

Each stack runs the real API under uvicorn on a free port and a real Celery worker
process, once per test session.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from archive.settings import Settings
from tests.tools import CLIENT_TLS
from tests.servers import (
    REDIS_URL,
    S3Server,
    create_pg_database,
    drop_pg_database,
    free_port,
    redis_db_url,
    start_s3,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = Path(__file__).resolve().parent / "system"
# The servers each marker stands for: the services stack needs all three.
SERVICES_STACK = ("postgres", "redis", "s3")
FIXTURE_NEEDS = {"pg_url": "postgres", "own_pg_url": "postgres", "s3_server": "s3"}


LONG_FIRST = ("system", "capture", "browser")
"""Test folders whose files run longest (a minute or more each): collected first, so the two
test processes (``--dist loadfile``) start them early and end together, instead of one of them
starting a long file when the other has nothing left."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what each test needs, so ``-m`` can choose: ``postgres``, ``redis`` and ``s3``
    for tests on the services stack or on those servers' fixtures, ``slow`` for the
    whole-system tests of tests/system (other slow tests are marked where they are). The
    long folders (:data:`LONG_FIRST`) go first, in that order; the rest keep theirs."""
    tests = Path(__file__).resolve().parent

    def rank(item: pytest.Item) -> int:
        top = item.path.relative_to(tests).parts[0] if tests in item.path.parents else ""
        return LONG_FIRST.index(top) if top in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the order within each rank stands
    for item in items:
        needs = {FIXTURE_NEEDS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_NEEDS}
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("stack") == "services":
            needs.update(SERVICES_STACK)
        if SYSTEM in item.path.parents:
            needs.add("slow")
        for name in sorted(needs):
            item.add_marker(name)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def own_pg_url() -> Iterator[str]:
    """A PostgreSQL database for one test whose service runs with keys of its own: sharing the
    session's database, it would seal checkpoints there that the session's stack cannot verify."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def settings_from_env(env: dict[str, str]) -> Settings:
    """The Settings a process started with ``env`` would build."""
    return Settings(**{k[len("EVIDENCE_"):].lower(): v for k, v in env.items() if k.startswith("EVIDENCE_")})


class ApiServer:
    """uvicorn serving our app in a thread of the test process, configured as ``evidence serve`` does."""

    def __init__(self, settings: Settings, *, http: str = "auto"):
        import uvicorn

        from api.app import create_app
        from api.http import uvicorn_config

        self.port = free_port()
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn_config(
            self.app, settings, http=http, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
        ))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        if not wait_port(self.port, 20):
            raise RuntimeError("API did not start")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Worker:
    """A real Celery worker process with the stack's environment."""

    def __init__(self, env: dict[str, str], log: Path, *, concurrency: int = 2, core: int | None = None):
        """``core``: pin the worker (and the ffmpeg it runs) to that one core, as on a host of its own."""
        self.env, self.log_path, self.concurrency, self.core = env, log, concurrency, core
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        pinned = None
        if self.core is not None:
            cores = sorted(os.sched_getaffinity(0))
            core = cores[self.core % len(cores)]
            pinned = lambda: os.sched_setaffinity(0, {core})  # noqa: E731 - runs in the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "threads",
             "--concurrency", str(self.concurrency), "--loglevel", "INFO", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
            env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=pinned,
        )

    def stop(self, *, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.log.close()


class WorkerHost:
    """A worker host: a Celery worker with a data directory of its own and the seal keys an
    administrator deployed to it (a copy of ``keys``), sharing only the network services."""

    FINISHED = re.compile(r"Task evidence\.process_item\[[^\]]+\] succeeded")

    def __init__(self, name: str, base_env: dict[str, str], keys: Path, root: Path, *,
                 concurrency: int = 2, core: int | None = None):
        home = root / name
        (home / "data").mkdir(parents=True)
        shutil.copytree(keys, home / "keys")
        env = dict(base_env, EVIDENCE_DATA_DIR=str(home / "data"), EVIDENCE_KEYS_DIR=str(home / "keys"))
        self.name, self.log = name, home / "worker.log"
        self.worker = Worker(env, self.log, concurrency=concurrency, core=core)

    @property
    def pid(self) -> int:
        assert self.worker.process is not None
        return self.worker.process.pid

    def finished(self) -> int:
        """process_item tasks this host finished, from its log (an item takes more than one)."""
        return len(self.FINISHED.findall(self.log.read_text(errors="replace"))) if self.log.exists() else 0

    def ready(self) -> bool:
        return self.log.exists() and " ready." in self.log.read_text(errors="replace")

    @staticmethod
    def wait_ready(hosts: list[WorkerHost], timeout: float) -> None:
        """Wait until every one of ``hosts`` has started consuming; RuntimeError naming their logs if not."""
        deadline = time.monotonic() + timeout
        while not all(h.ready() for h in hosts):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker hosts did not start; see {[str(h.log) for h in hosts]}")
            time.sleep(0.02)


@dataclass
class Stack:
    """One running configuration of the service, as a user would meet it."""

    name: str
    env: dict[str, str]
    settings: Settings
    api: ApiServer
    worker: Worker
    tmp: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.api.app.state.services

    def user(self, *, role: str = "officer", unit: str | None = None, name: str | None = None) -> str:
        """Create a user through the service and return its token."""
        from archive.identity.users import add_user

        name = name or f"{role}-{uuid.uuid4().hex[:8]}"
        with self.services.db.session() as session:
            _user, token = add_user(session, name=name, unit=unit or "unit-a", role=role)
        return token

    def client(self, token: str | None, *, address: str | None = None, url: str | None = None) -> httpx.Client:
        """A client of the API, with ``token``, from a local ``address`` (127.x.y.z) if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(local_address=address, verify=CLIENT_TLS) if address else None
        return httpx.Client(base_url=url or self.url, headers=headers, timeout=60, transport=transport,
                            verify=CLIENT_TLS)

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        """Run the ``evidence`` command line with the stack's environment."""
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], env=self.env, cwd=ROOT,
            capture_output=True, text=True, timeout=300, check=check,
        )

    def wait_item(self, token: str, item_id: str, predicate, timeout: float = 60.0) -> dict:  # type: ignore[no-untyped-def]
        """Poll the item until ``predicate(item_json)`` holds (worker progress)."""
        deadline = time.monotonic() + timeout
        with self.client(token) as c:
            while True:
                item = c.get(f"/api/v1/evidence/{item_id}").json()
                if predicate(item):
                    return item
                if time.monotonic() > deadline:
                    raise AssertionError(f"item never reached the expected state: {item}")
                time.sleep(0.2)


def _base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_DATA_DIR"] = str(tmp / "data")
    env["EVIDENCE_QUEUE_NAME"] = f"evidence-test-{uuid.uuid4().hex[:8]}"
    # This checkout's verifier too: the venv's editable install may be another checkout's.
    env["PYTHONPATH"] = os.pathsep.join((str(ROOT), str(ROOT / "verifier")))
    # Every test talks from 127.0.0.1: the shared stack must not lock that address out
    # after the suite's deliberate bad tokens. tests/api/test_access.py runs its own API with
    # the default limits and clients on addresses of their own.
    env["EVIDENCE_SIGNIN_MAX_FAILURES_PER_CLIENT"] = "100000"
    return env


@contextmanager
def running_stack(request: pytest.FixtureRequest, name: str, tmp: Path, *, database_url: str | None = None,
                  extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The service on stack ``name`` (``embedded`` or ``services``): migrated, API and worker
    running, under ``tmp``; on ``services`` with ``database_url`` (default: the session's);
    ``extra_env`` adds settings (e.g. ``EVIDENCE_CAPTURE_ALLOW_NETWORKS``)."""
    env = {**_base_env(tmp), **(extra_env or {})}
    if name == "services":
        s3: S3Server = request.getfixturevalue("s3_server")
        env.update(
            EVIDENCE_DATABASE_URL=database_url or request.getfixturevalue("pg_url"),
            # Two stacks (one per xdist process), their workers and the servers system tests
            # start share one PostgreSQL of 100 connections: each process of a stack keeps
            # fewer than the default 20 unless the test asks for more.
            EVIDENCE_DATABASE_CONNECTIONS=(extra_env or {}).get("EVIDENCE_DATABASE_CONNECTIONS", "12"),
            EVIDENCE_STORAGE_BACKEND="s3",
            EVIDENCE_S3_ENDPOINT=s3.endpoint,
            EVIDENCE_S3_ACCESS_KEY=s3.access_key,
            EVIDENCE_S3_SECRET_KEY=s3.secret_key,
            EVIDENCE_S3_SECURE="false",
            EVIDENCE_S3_BUCKET=_bucket_of(tmp),
            EVIDENCE_S3_PART_SIZE=str(5 * 1024 * 1024),
            EVIDENCE_BROKER_URL=redis_db_url(),
        )
    settings = settings_from_env(env)
    from archive import db

    db.upgrade(settings)
    api = ApiServer(settings)
    worker = Worker(env, tmp / "worker.log")
    worker.start()
    s = Stack(name=name, env=env, settings=settings, api=api, worker=worker, tmp=tmp)
    try:
        yield s
    finally:
        worker.stop()
        api.stop()
        s.services.db.dispose()


@contextmanager
def own_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefix: str, *,
              extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A stack of its own (``request.param``: embedded or services, with a PostgreSQL
    database of its own), for a module whose work must not delay the shared stack's tests, or
    whose settings differ (``extra_env``): two stacks with keys of their own must never share a
    database, or one would verify the other's checkpoints against the wrong roots."""
    database_url = create_pg_database() if request.param == "services" else None
    try:
        with running_stack(request, request.param, tmp_path_factory.mktemp(f"{prefix}-{request.param}"),
                           database_url=database_url, extra_env=extra_env) as s:
            yield s
    finally:
        if database_url:
            drop_pg_database(database_url)


def _bucket_of(tmp: Path) -> str:
    """The S3 bucket of the stack whose files are under ``tmp``: the same one when the stack is
    started again there (its database still names the objects in it)."""
    name = tmp / "s3-bucket"
    if not name.exists():
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_text(f"vaults-{uuid.uuid4().hex[:8]}")
    return name.read_text()


@pytest.fixture(scope="session", params=["embedded", "services"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    """The service running on one stack; every test using it runs on both.

    pytest may stop a session fixture and start it again when the tests of a process alternate
    between its parameters (as under pytest-xdist): a stack started again keeps its folder,
    so its keys, its embedded database and its bucket, as the session's PostgreSQL database
    does; with new keys, the checkpoints its first run sealed there would not verify."""
    tmp = tmp_path_factory.getbasetemp() / f"stack-{request.param}"
    tmp.mkdir(exist_ok=True)
    with running_stack(request, request.param, tmp) as s:
        yield s


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the ``evidence`` command line in a process with ``env``."""
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def run_sql(database, statement: str, params: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    """Play an insider: run one SQL statement straight on the database, in its own transaction."""
    from sqlalchemy import text

    with database.engine.begin() as conn:
        conn.execute(text(statement), params or {})


def sequenced_soon(database, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until no committed custody entry waits to be sequenced (on PostgreSQL each
    process's sequencer does it just after the commit, see archive.custody.ledger.append);
    fail after ``timeout`` seconds."""
    from archive.custody import ledger

    deadline = time.monotonic() + timeout
    while True:
        with database.snapshot() as s:
            if not ledger.waiting(s):
                return
        assert time.monotonic() < deadline, "custody entries still wait to be sequenced"
        time.sleep(0.02)


def unprotect_ledger(database) -> None:  # type: ignore[no-untyped-def]
    """Play an insider with superuser rights: drop the ledger's append-only triggers."""
    from sqlalchemy import text

    with database.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_append_only"))
        else:
            conn.execute(text("DROP TRIGGER ledger_no_update"))
            conn.execute(text("DROP TRIGGER ledger_no_delete"))


@pytest.fixture
def own_ledger(stack: Stack, tmp_path: Path) -> Iterator[tuple[dict[str, str], object]]:
    """A database of its own (same kind as the stack's) holding six ledger entries.

    Tampering tests use it so the shared stack's ledger stays intact for the others.
    """
    from archive import db as archive_db
    from archive.custody import ledger
    from archive.db import Database

    env = dict(stack.env)
    env["EVIDENCE_DATA_DIR"] = str(tmp_path / "data")
    pg = None
    if stack.name == "services":
        pg = create_pg_database()
        env["EVIDENCE_DATABASE_URL"] = pg
    settings = settings_from_env(env)
    archive_db.upgrade(settings)
    database = Database(settings)
    with database.session() as s:
        for i in range(6):
            ledger.append(s, actor="test", action="note", details={"i": i})
    sequenced_soon(database)
    yield env, database
    database.dispose()
    if pg:
        drop_pg_database(pg)


@pytest.fixture
def officer(stack: Stack) -> str:
    return stack.user(role="officer", unit="unit-a")


@pytest.fixture
def case(stack: Stack, officer: str) -> dict:
    with stack.client(officer) as c:
        r = c.post("/api/v1/cases", json={"case_number": f"CASE-{uuid.uuid4().hex[:10]}", "title": "Test case"})
        assert r.status_code == 201, r.text
        return r.json()


__all__ = ["Stack", "REDIS_URL"]


def receive_directly(
    stack: Stack, case: dict, data: bytes, *, kind: str = "other", filename: str = "r.bin", sm3: bool = True
) -> str:
    """An original received in-process without the worker (nothing enqueued), SM3 computed.

    For tests that drive a pipeline step themselves; returns the item id.
    """
    from sqlalchemy import delete

    from archive.evidence import fixity
    from archive.evidence import receiving
    from archive.db import Database
    from archive.models import EvidenceKind, Work
    from archive.identity.users import add_user

    # A database handle of its own: the API's rings the workers' bell after each commit.
    db, store = Database(stack.settings), stack.services.store
    try:
        with db.session() as session:
            user, _ = add_user(session, name=f"officer-{uuid.uuid4().hex[:8]}", unit="unit-a", role="officer")
            user_id = user.id
        item = receiving.receive_original(
            db=db, store=store, user_id=user_id, retention_days=1, chunks=[data],
            incoming=receiving.IncomingEvidence(case_id=case["id"], kind=EvidenceKind(kind), filename=filename),
        )
        with db.session() as session:  # the test is the worker: no reconciler may send it
            session.execute(delete(Work).where(Work.subject == item.id))
        if sm3:
            fixity.compute_sm3(db=db, store=store, item_id=item.id)
        return item.id
    finally:
        db.dispose()


def process(stack: Stack, item_id: str) -> None:
    """Ask the stack's worker to process an item received with :func:`receive_directly`
    (recorded as durable work, rung after the commit, as the service itself does)."""
    from archive import work

    with stack.services.db.session() as session:
        work.want(session, task=work.PROCESS_ITEM, subject=item_id)


def tamper_stored(store, key: str, *, delete: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Change one byte of a stored object (or, ``delete``, remove it) behind the archive's back,
    as an insider with store access could: the file itself in a local store; on S3, where the
    locked version cannot change, a newer version or a delete marker put on top of it."""
    if not hasattr(store, "client"):
        path = store.root / key
        path.chmod(0o644)
        if delete:
            path.unlink()
            return
        data = bytearray(path.read_bytes())
        data[0] ^= 0x40
        path.write_bytes(bytes(data))
        return
    if delete:
        store.client.remove_object(store.bucket, key)
        return
    data = bytearray(b"".join(store.read(key)))
    data[0] ^= 0x40
    store.client.put_object(store.bucket, key, io.BytesIO(bytes(data)), len(data))
