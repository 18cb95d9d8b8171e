"""PostgreSQL connections of a process: a burst reuses the pooled ones instead of opening
and closing new ones, a connection the server dropped while it rested is replaced before a
request meets it, and one dropped in use costs one "busy" answer, never a stuck pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from archive import db as archive_db
from archive.db import Database
from archive.errors import DatabaseBusy
from archive.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(pg_url: str, tmp_path) -> Iterator[Database]:
    database = Database(Settings(data_dir=tmp_path, database_url=pg_url, database_connections=5))
    yield database
    database.dispose()


def _backend(database: Database, *, hold: float = 0.0) -> int:
    """The server process behind a read (which holds its connection ``hold`` seconds)."""
    with database.read() as s:
        return s.execute(text("SELECT pg_backend_pid() FROM pg_sleep(:hold)"), {"hold": hold}).scalar_one()


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_bursts_of_readers_reuse_the_pooled_connections(database):
    seen: set[int] = set()
    lock = threading.Lock()

    def reader() -> None:
        for _ in range(10):
            pid = _backend(database, hold=0.005)
            with lock:
                seen.add(pid)

    for _burst in range(2):  # between bursts every connection goes back to the pool
        threads = [threading.Thread(target=reader) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # 600 reads by 30 threads through 5 connections, in two bursts: never a sixth server
    # process (an overflow connection closed after the first burst was opened anew after).
    assert 1 <= len(seen) <= 5, seen


def test_a_connection_dropped_while_it_rested_is_replaced_unseen(database, pg_url, monkeypatch):
    monkeypatch.setattr(archive_db, "PING_AFTER_IDLE", 0.2)
    first = _backend(database)
    _terminate(pg_url, first)
    time.sleep(0.4)
    assert _backend(database) != first  # pinged, found dead, replaced: the read never saw it


def test_a_connection_dropped_in_use_answers_busy_once_then_reads_go_on(database, pg_url):
    first = _backend(database)
    _terminate(pg_url, first)  # and used again at once, before any ping would be due
    with pytest.raises(DatabaseBusy):
        _backend(database)
    assert _backend(database) != first



def test_a_connection_dropped_mid_transaction_is_busy_never_a_raw_driver_error(database, pg_url):
    """The server drops the connection after a read got its rows, and in the middle of a
    write: the read keeps its rows (ending its transaction cannot fail it), the write raises
    DatabaseBusy (503 database_busy), although neither can roll back on a dead connection;
    reads then go on with fresh connections. Before, the rollback's own OperationalError
    escaped: a reset connection for a client, an item's processing given up for good."""
    with database.read() as s:
        pid, answer = s.execute(text("SELECT pg_backend_pid(), 42")).one()
        _terminate(pg_url, pid)
    assert answer == 42
    with pytest.raises(DatabaseBusy):
        with database.session() as s:
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            _terminate(pg_url, pid)
            s.execute(text("SELECT 1"))
    assert _backend(database) not in (pid, None)


def test_a_read_runs_each_query_on_its_own_and_a_snapshot_keeps_one(database):
    """A reading session sends no BEGIN and no ROLLBACK (two of a case read's round trips):
    each statement is its own transaction, so its ``now()`` is its own start. A snapshot
    session keeps one transaction, hence one ``now()``, over all its statements, and it can
    still stream rows through a server-side cursor."""
    same_start = text("SELECT now() = statement_timestamp() FROM pg_sleep(0.01)")
    with database.read() as s:
        assert [s.execute(same_start).scalar_one() for _ in range(3)] == [True, True, True]
    with database.snapshot() as s:
        first = s.execute(text("SELECT now()")).scalar_one()
        assert s.execute(same_start).scalar_one() is False
        assert s.execute(text("SELECT now()")).scalar_one() == first
        streamed = s.execute(text("SELECT generate_series(1, 5)").execution_options(yield_per=2)).scalars()
        assert list(streamed) == [1, 2, 3, 4, 5]
