"""Engine and sessions, and schema migrations (Alembic).

Two kinds of session: :meth:`Database.session` for work that writes and
:meth:`Database.read` for work that only reads. On SQLite (embedded default, WAL) a
writing session starts with ``BEGIN IMMEDIATE`` so two writers never interleave a
read-then-append of the custody ledger, while a reading one starts a deferred ``BEGIN``:
under WAL it reads one snapshot and neither waits for the write lock nor holds it.

A database that stays busy past its timeout (SQLite's lock, an exhausted pool, an
unreachable server) surfaces as :class:`DatabaseBusy` (503 with ``Retry-After``), never as
a driver error.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Engine, Integer, MetaData, String, create_engine, event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from archive.errors import ArchiveError, Conflict, DatabaseBusy, DatabaseFull, InvalidInput
from archive.settings import Settings

if TYPE_CHECKING:  # Alembic is loaded when migrating: an API process needs none of its 10 MB
    from alembic.config import Config

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
SNAPSHOT = "evidence_snapshot"
SQLITE_BUSY_MS = 15_000
"""How long a SQLite writer waits for the write lock before the request answers 503.
Writers hold it only for their short transaction, so a wait this long means overload."""
POOL_TIMEOUT = 15
"""Seconds a request waits for a pooled connection before answering 503."""


def _has_nul(parameters: object) -> bool:
    if isinstance(parameters, str):
        return "\x00" in parameters
    if isinstance(parameters, dict):
        return any(_has_nul(v) for v in parameters.values())
    if isinstance(parameters, (list, tuple)):
        return any(_has_nul(v) for v in parameters)
    return False


def refuse_nul(parameters: object) -> None:
    """InvalidInput (422 ``nul_character``) when text in ``parameters`` holds a NUL: PostgreSQL
    text cannot (psycopg raises DataError, a 500), so it is refused on every database alike and
    both stacks accept the same text. Every statement's parameters are checked; a statement
    that carries text inside other text (JSON, where a NUL is written ``\\u0000``) checks its
    own before encoding it."""
    if _has_nul(parameters):
        raise InvalidInput("text must not contain NUL characters", code="nul_character")


def _refuse_nul(_conn, _cursor, _statement, parameters, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
    refuse_nul(parameters)


def make_engine(url: str, *, connections: int = 20) -> Engine:
    """Create an engine for ``url`` with the per-dialect settings the archive relies on;
    on PostgreSQL it holds at most ``connections`` at once.

    Every statement whose parameters hold a NUL character is refused (InvalidInput).
    """
    engine = _make_engine(url, connections)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


class FairLock:
    """A lock granted in arrival order (FIFO hand-over), with a timeout."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        with self._guard:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._guard:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()  # the lock passes straight to the next in line
            else:
                self._held = False


def json_loads(text: str | bytes) -> Any:
    """A JSON column's value: parsed by orjson (a case's evidence list parses hundreds of
    media facts; json's parser was a fifth of its CPU), or by json for what orjson refuses
    (an integer beyond 64 bits, NaN), so every stored value still reads back."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _make_engine(url: str, connections: int) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Connections to a local file are cheap: enough for every API thread (anyio's 40)
        # plus the worker's, so no request waits on the pool rather than on the lock.
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False}, json_deserializer=json_loads,
            pool_size=20, max_overflow=60, pool_timeout=POOL_TIMEOUT,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Take over transaction control so BEGIN IMMEDIATE can be issued below.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            # Every commit reaches the disk before it is acknowledged (power loss loses
            # no accepted evidence); WAL keeps that to one sequential write per commit.
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        writers = FairLock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A read-only snapshot (Database.read/snapshot) takes no write lock: under WAL a
            # deferred transaction reads one snapshot and never blocks a writer.
            if conn.get_execution_options().get(SNAPSHOT):
                conn.exec_driver_sql("BEGIN")
                return
            # Writers of this process queue here in arrival order: SQLite's own busy handler
            # polls with growing sleeps, so under load forty waiting threads starve each
            # other past any timeout. Only one thread per process then meets the handler.
            if not writers.acquire(SQLITE_BUSY_MS / 1000):
                raise DatabaseBusy("the database is busy; nothing was changed, please retry in a moment")
            conn.info["holds_writer_lock"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn)
                raise

        def _release(conn):  # type: ignore[no-untyped-def]
            if conn.info.pop("holds_writer_lock", False):
                writers.release()

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # Every connection stays open once made: overflow connections were closed whenever a
    # burst ebbed and opened anew (a server process started for each) at the next one.
    engine = create_engine(url, pool_size=connections, max_overflow=0, pool_timeout=POOL_TIMEOUT,
                           json_deserializer=json_loads)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE = 2.0
"""Seconds a pooled PostgreSQL connection may rest before its next use pings it first."""


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection at check-out only when it has rested (SQLAlchemy's pessimistic
    disconnect handling, as its documentation's custom recipe): a connection the server
    dropped while it rested (a restart, an idle timeout) is replaced before a request meets
    it, and one in use a moment ago costs no extra round trip (``pool_pre_ping`` pinged at
    every check-out: two of a read's eleven round trips)."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _rested_from(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_rested(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("checked_in", 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure of the ping means a dead connection
            # The server dropped it, likely every other one too (a restart): the pool
            # discards the connections made before now and this check-out makes a new one.
            raise sa_exc.InvalidatePoolError(f"connection lost while idle: {exc}") from exc


def _is_busy(exc: BaseException) -> bool:
    """True for a database that is busy or unreachable (retrying later can succeed)."""
    if isinstance(exc, sa_exc.TimeoutError):  # the connection pool ran dry
        return True
    if isinstance(exc, sa_exc.OperationalError):
        if type(exc.orig).__module__.startswith("sqlite3"):
            text = str(exc.orig).lower()
            return "locked" in text or "busy" in text  # SQLITE_BUSY / SQLITE_LOCKED
        # PostgreSQL (psycopg): a lost or refused connection, too many clients, a
        # deadlock or serialization failure: all transient, all safe to retry.
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    # A connection the server closed under us ("the connection is closed") on PostgreSQL.
    return isinstance(exc, sa_exc.InterfaceError) and not type(exc.orig).__module__.startswith("sqlite3")


def _end(session: Session) -> None:
    """Roll back what is left of ``session``'s transaction. A connection the server has
    dropped cannot roll back, and needs not: its transaction is gone with it. That must not
    replace the error being raised, or fail a read that already has its rows."""
    try:
        session.rollback()
    except sa_exc.DBAPIError as exc:
        if not _is_busy(exc):
            raise
        session.invalidate()


SQLITE_FULL = 13
"""SQLite's result code for a write that found no room on the disk."""


def _is_full(exc: BaseException) -> bool:
    """True for a database that cannot write for want of disk space: SQLite's SQLITE_FULL
    ("database or disk is full"), PostgreSQL's ``disk_full`` (SQLSTATE 53100)."""
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL or getattr(orig, "sqlstate", None) == "53100"


def translate_busy(exc: BaseException) -> None:
    """Raise :class:`DatabaseBusy` from ``exc`` when it says the database is busy
    (:class:`DatabaseFull` when it is out of disk space)."""
    if _is_full(exc):
        raise DatabaseFull(
            "the database's disk is full; nothing was changed, please retry once space is freed"
        ) from exc
    if _is_busy(exc):
        raise DatabaseBusy(
            "the database is busy; nothing was changed, please retry in a moment", code="database_busy"
        ) from exc


@event.listens_for(Session, "before_flush")
def _refuse_writes_in_read_sessions(session: Session, _context, _instances) -> None:  # type: ignore[no-untyped-def]
    if session.info.get("read_only") and (session.new or session.dirty or session.deleted):
        raise RuntimeError("a read-only session was asked to write; use Database.session()")


AFTER_COMMIT = "evidence_after_commit"
COMMITTED = "evidence_committed"


Action = TypeVar("Action", bound=Callable[[Engine], object])


def after_commit(session: Session, key: str, make: Callable[[], Action]) -> Action:
    """Run an action once, after ``session``'s transaction commits (never after a rollback)
    and has given its connection back, with the engine, in transactions of its own; return it. The first call for ``key`` in a
    transaction makes the action (``make()``); later ones return the same action, so callers
    can hand it more work. The work must be safe to leave for later: if it fails (or the
    process dies first), what was committed stands and the action's own recovery picks it up.
    """
    actions = session.info.setdefault(AFTER_COMMIT, {})
    if key not in actions:
        actions[key] = make()
    return actions[key]  # type: ignore[no-any-return]


def will_run_after_commit(session: Session, key: str) -> bool:
    """True when :func:`after_commit` was asked for ``key`` in this transaction."""
    return key in session.info.get(AFTER_COMMIT, {})


_BEFORE_SNAPSHOT: list[Callable[[Engine], object]] = []
_BEFORE_DISPOSE: list[Callable[[Engine], object]] = []


def before_snapshot(hook: Callable[[Engine], object]) -> None:
    """Run ``hook(engine)`` before each :meth:`Database.snapshot` is taken, so that the
    snapshot holds what it does (the custody ledger sequences its committed entries there)."""
    _BEFORE_SNAPSHOT.append(hook)


def before_dispose(hook: Callable[[Engine], object]) -> None:
    """Run ``hook(engine)`` before :meth:`Database.dispose` closes the engine's connections
    (the ledger's sequencer finishes its pass there, not on a connection left behind)."""
    _BEFORE_DISPOSE.append(hook)


def _committed(session: Session) -> None:
    # Not run here: the session still holds its connection until its transaction ends, and
    # an action taking a second one per request could exhaust the pool under a burst.
    actions = session.info.pop(AFTER_COMMIT, None)
    if actions:
        session.info.setdefault(COMMITTED, {}).update(actions)


def _transaction_ended(session: Session, transaction: Any) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    actions = session.info.pop(COMMITTED, None)
    if not actions:
        return
    engine = session.get_bind()
    for key, action in actions.items():
        try:
            action(engine)
        except ArchiveError as exc:  # the transaction committed: its outcome stands; the action recovers later
            log.warning("after-commit step %s did not run (%s); it is retried by its recovery", key, exc.message)
        except Exception:
            log.warning("after-commit step %s did not run; it is retried by its recovery", key, exc_info=True)


def _drop_after_commit(session: Session) -> None:
    session.info.pop(AFTER_COMMIT, None)


class Database:
    """An engine plus its session factory, built once per process from settings."""

    def __init__(self, settings: Settings):
        self.url = settings.resolved_database_url
        self.engine = make_engine(self.url, connections=settings.database_connections)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Reading sessions use the same pool with their options set on each connection they take.
        reading = self.engine.execution_options(**{SNAPSHOT: True})
        self._read_engine = self._snapshot_engine = reading
        if self.engine.dialect.name == "postgresql":
            # A reading session on PostgreSQL runs each query on its own (autocommit): under
            # READ COMMITTED every statement saw a new snapshot anyway, and the BEGIN and
            # ROLLBACK around them were two of a case read's six round trips. It has no
            # transaction, so no server-side cursor either: a read that streams rows
            # (``yield_per``) or needs one snapshot uses :meth:`snapshot`.
            self._read_engine = reading.execution_options(isolation_level="AUTOCOMMIT")
            self._snapshot_engine = reading.execution_options(isolation_level="REPEATABLE READ")
        event.listen(self.sessions, "after_commit", _committed)
        event.listen(self.sessions, "after_rollback", _drop_after_commit)
        event.listen(self.sessions, "after_transaction_end", _transaction_ended)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A writing session: its transaction commits on success and rolls back on error.

        Keep it short: on SQLite it holds the database's one write lock from its first
        statement to its end. Stream, hash and compute outside it.
        """
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException as exc:
                _end(session)
                translate_busy(exc)
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A reading session: takes no write lock and writes nothing (it rolls back).

        Ending it makes no round trip to the database: on PostgreSQL each query ran on its
        own (autocommit), so there is no transaction to end; SQLite ends its read in process.

        A flush with pending changes is refused, so a write hidden in a read path is a
        loud programming error rather than a silent upgrade to the write lock.
        """
        with self._reading(self._read_engine) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session whose every query sees one snapshot of the database.

        Verification reads an item, its derived rows, its custody entries and the latest
        checkpoint in several statements while workers keep committing. Under PostgreSQL's
        default READ COMMITTED each statement would see a newer state (an item read as
        unsealed, then its seal rows committed a moment later), and a half-old, half-new
        picture looks exactly like tampering. REPEATABLE READ gives one snapshot; SQLite's
        deferred ``BEGIN`` under WAL does the same without taking the write lock. Nothing is
        written: it rolls back. The snapshot holds every custody entry committed before it
        was taken: those still waiting to be sequenced are sequenced first.
        """
        for hook in _BEFORE_SNAPSHOT:
            hook(self.engine)
        with self._reading(self._snapshot_engine) as session:
            yield session

    @contextmanager
    def _reading(self, engine: Engine) -> Iterator[Session]:
        # The connection is taken by the first query, not here: a request opens its reading
        # session before it authenticates (in a short session of its own), and one holding a
        # connection while it waits for a second would, under a burst, leave every pooled
        # connection held by requests waiting for another.
        with self.sessions(bind=engine) as session:
            session.info["read_only"] = True
            try:
                yield session
            except BaseException as exc:
                translate_busy(exc)
                raise
            finally:
                # Detach what was read before ending the transaction, so the objects
                # keep their loaded values for the caller (a rollback would expire them).
                session.expunge_all()
                _end(session)

    def dispose(self) -> None:
        for hook in _BEFORE_DISPOSE:
            hook(self.engine)
        self.engine.dispose()


Row = TypeVar("Row")


def lock_row(session: Session, model: type[Row], row_id: object) -> Row | None:
    """Load the ``model`` row with id ``row_id`` and lock it until the transaction ends
    (None when there is no such row). The one way rows are locked for a change.

    Lock order, in every transaction (the other order deadlocks on PostgreSQL): a name held
    by :func:`hold_name` before any row, then the device row, case rows (sorted by id), the item row, then export, upload, receipt or gap rows,
    and the custody ledger's lock last (:func:`archive.custody.ledger.append`). An UPDATE
    locks its row too: change (or lock) rows before the first ledger append, since a change
    made after it is flushed, and its row locked, after the ledger lock. The lock is
    FOR NO KEY UPDATE (``key_share``), which does not block inserts that reference the row;
    on SQLite the write transaction itself serialises writers.
    """
    query = select(model).where(model.id == row_id).with_for_update(of=model, key_share=True)  # type: ignore[attr-defined]
    return session.execute(query).scalar_one_or_none()


def hold_name(session: Session, *parts: str) -> None:
    """Hold the name ``parts`` until the transaction ends: another transaction holding the same
    name waits for this one to commit or roll back; other names do not wait.

    For a check and the write it allows that no row can guard, because the row is the one
    about to be written (e.g. "this case holds no item of this content" and that item's
    insert). On PostgreSQL a transaction-scoped advisory lock on a 64-bit digest of the name (two
    names sharing a digest only wait for each other); on SQLite the write transaction itself
    already serialises writers. Take it first in its transaction, before any row lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def share_row(session: Session, model: type[Row], row_id: object) -> Row | None:
    """Load the ``model`` row and hold it unchanged until the transaction ends (FOR SHARE).

    Many transactions may share a row at once; a :func:`lock_row` of it waits for them all,
    and they wait for it. Evidence registration shares its case row, so a case cannot close
    between the check that it is open and the commit of the new item. A transaction that
    shares a row must not change that row later (two sharers upgrading would deadlock).
    On SQLite the write transaction itself serialises writers.
    """
    query = select(model).where(model.id == row_id).with_for_update(of=model, read=True)  # type: ignore[attr-defined]
    return session.execute(query).scalar_one_or_none()


def insert_ignoring_duplicates(session: Session, model: type, rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` into ``model``'s table, skipping each one whose key is already there.

    ``INSERT ... ON CONFLICT DO NOTHING`` on both databases: two transactions inserting the
    same row at once both succeed (on PostgreSQL the second waits for the first to commit,
    then skips), where a look-then-insert would let the second fail with a unique
    violation. Returns how many rows were inserted.
    """
    rows = list(rows)
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__  # type: ignore[attr-defined]
    # RETURNING counts what went in (a driver's rowcount for this statement may be -1).
    statement = insert(table).values(rows).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return len(session.execute(statement).all())


UNIQUE_CONFLICTS = {
    "cases": ("case_number_taken", "your unit has a case with this number already"),
    "units": ("unit_exists", "a unit with this name already exists"),
    "users": ("user_exists", "a user with this name already exists"),
    "devices": ("device_exists", "this device was just created by another request; try again"),
    "idempotency_keys": ("idempotency_key_in_use", "a request with this Idempotency-Key is being processed"),
}
"""Table -> (code, message) of the 409 a unique violation on it becomes; others: ``already_exists``."""


def unique_conflict(exc: IntegrityError) -> Conflict | None:
    """The 409 a unique-constraint violation means for a client, or None for other integrity errors.

    PostgreSQL names the table (SQLSTATE 23505); SQLite says
    ``UNIQUE constraint failed: table.column``. Two requests racing to create the same thing
    must get a conflict, never an internal error.
    """
    orig = exc.orig
    table: str | None = None
    if getattr(orig, "sqlstate", None) == "23505":
        table = getattr(getattr(orig, "diag", None), "table_name", None) or ""
    else:
        message = str(orig)
        if message.startswith("UNIQUE constraint failed:"):
            table = message.split(":", 1)[1].strip().split(".", 1)[0]
    if table is None:
        return None
    code, text = UNIQUE_CONFLICTS.get(table, ("already_exists", "this already exists"))
    return Conflict(text, code=code)


@contextmanager
def unique_violations_as_conflicts() -> Iterator[None]:
    """Raise the :func:`unique_conflict` (409) of a unique violation inside the block; other errors pass."""
    try:
        yield
    except IntegrityError as exc:
        conflict = unique_conflict(exc)
        if conflict is None:
            raise
        raise conflict from exc


MODEL_MODULES = (
    "archive.models", "archive.continuity.models", "archive.cases.models", "archive.records.models",
    "archive.exports.models", "archive.inspections.models",
)
"""Every module that declares tables; Alembic's environment imports them all, so that
autogenerate sees every model (a table missing here would be dropped by it)."""


def model_metadata() -> MetaData:
    """The metadata of every table of the archive (each module of :data:`MODEL_MODULES` imported)."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from archive.models import Base

    return Base.metadata


def compare_type(context: Any, inspected_column: Any, metadata_column: Any, inspected_type: Any,
                 metadata_type: Any) -> bool | None:
    """Autogenerate's type comparison, knowing that SQLite's INTEGER is BIGINT and that its
    text has no length.

    SQLite stores every integer in up to 8 bytes and any text in any column, so revision 0004
    widened the ledger's counters, and 0028 its actor, on PostgreSQL only (an ALTER on SQLite
    would rebuild the table and lose its triggers). None lets Alembic compare every other
    type as usual.
    """
    if context.dialect.name == "sqlite" and isinstance(inspected_type, Integer) and isinstance(metadata_type, Integer):
        return False
    if context.dialect.name == "sqlite" and isinstance(inspected_type, String) and isinstance(metadata_type, String):
        return False  # SQLite holds no text column to its length (revision 0028 widened on PostgreSQL only)
    return None


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at our migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (default: the newest)."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), revision)
