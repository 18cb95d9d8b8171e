"""Tokens checked lately are answered without a query, and any change still counts from the
very next request: a token revoked (through the API, the command line in another process, or
straight in the database), a user disabled, demoted or moved to another unit, a token
expiring, and a cache whose change listener lost its connection.

On PostgreSQL each API process caches tokens and a trigger's notification empties the cache;
on SQLite nothing is cached, and the same requests are refused as well."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from sqlalchemy import text

from tests.conftest import run_cli, run_sql


@pytest.fixture
def admin(stack) -> str:  # type: ignore[no-untyped-def]
    return stack.user(role="admin", unit="hq")


def _cached(stack) -> bool:  # type: ignore[no-untyped-def]
    return stack.services.tokens.enabled


def _warm(stack, client, path: str = "/api/v1/cases") -> None:  # type: ignore[no-untyped-def]
    """Two good requests; on PostgreSQL the second is answered from the cache."""
    tokens = stack.services.tokens
    deadline = time.monotonic() + 20
    while True:
        hits = tokens.hits
        assert client.get(path).status_code == 200
        assert client.get(path).status_code == 200
        if not _cached(stack) or tokens.hits > hits:
            return
        assert time.monotonic() < deadline, "the token cache never answered (its listener is not listening)"
        time.sleep(0.1)


def _refused(client, code: str, path: str = "/api/v1/cases") -> None:  # type: ignore[no-untyped-def]
    r = client.get(path)
    assert (r.status_code, r.json()["error"]["code"]) == (401, code), r.text


def test_a_revoked_token_is_refused_from_the_next_request_however_it_was_revoked(stack, admin):
    officer_name = f"cached-{uuid.uuid4().hex[:8]}"
    with stack.client(admin) as a:
        created = a.post("/api/v1/users", json={"name": officer_name, "unit": "unit-a", "role": "officer"})
        assert created.status_code == 201, created.text
    first = created.json()["token"]

    # Through the API, by its owner.
    with stack.client(first["token"]) as c:
        _warm(stack, c)
        second = c.post("/api/v1/tokens", json={"name": "second"}).json()
        third = c.post("/api/v1/tokens", json={"name": "third"}).json()
        assert c.delete(f"/api/v1/tokens/{first['id']}").status_code == 200
        _refused(c, "token_revoked")

    # From the command line, another process.
    with stack.client(second["token"]) as c:
        _warm(stack, c)
        shown = run_cli(stack.env, "token", "revoke", second["id"])
        assert shown.returncode == 0, shown.stderr
        _refused(c, "token_revoked")

    # Straight in the database (an administrator with SQL rights).
    with stack.client(third["token"]) as c:
        _warm(stack, c)
        run_sql(stack.services.db, "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE id = :id",
                {"id": third["id"]})
        _refused(c, "token_revoked")


def test_a_user_disabled_demoted_or_moved_is_held_to_it_from_the_next_request(stack, admin):
    name = f"cached-{uuid.uuid4().hex[:8]}"
    with stack.client(admin) as a:
        token = a.post("/api/v1/users", json={"name": name, "unit": "hq", "role": "admin"}).json()["token"]["token"]
        case = a.post("/api/v1/cases", json={"case_number": f"TC-{uuid.uuid4().hex[:8]}", "title": "t"}).json()
        with stack.client(token) as c:
            _warm(stack, c, "/api/v1/users")
            assert a.patch(f"/api/v1/users/{name}", json={"role": "officer"}).status_code == 200
            r = c.get("/api/v1/users")
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_role"), r.text

            _warm(stack, c, f"/api/v1/cases/{case['id']}")
            assert a.patch(f"/api/v1/users/{name}", json={"unit": "unit-b"}).status_code == 200
            r = c.get(f"/api/v1/cases/{case['id']}")
            assert r.status_code == 404, r.text  # another unit's case is not there for it

            _warm(stack, c)
            assert a.patch(f"/api/v1/users/{name}", json={"active": False}).status_code == 200
            _refused(c, "user_disabled")


def test_a_cached_token_stops_working_when_it_expires(stack, officer):
    with stack.client(officer) as c:
        short = c.post("/api/v1/tokens", json={"name": "short", "expires_in": 2}).json()
    with stack.client(short["token"]) as c:
        _warm(stack, c)
        time.sleep(2.2)
        _refused(c, "token_expired")


def _listened_token(stack, officer: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    """A new token of the officer, answered from the cache, and the pids of the server
    processes serving this process's token-cache listener (PostgreSQL only)."""
    from archive.identity import token_cache

    if not _cached(stack):
        pytest.skip("nothing is cached on SQLite")
    with stack.client(officer) as c:
        extra = c.post("/api/v1/tokens", json={"name": name}).json()
    with stack.client(extra["token"]) as c:
        _warm(stack, c)
    with stack.services.db.engine.begin() as conn:
        extra["listeners"] = conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :a"),
            {"a": token_cache.APPLICATION}).scalars().all()
    return extra


def test_a_cache_that_cannot_hear_changes_is_not_used(stack, officer):
    """The listener's connection is cut (as a database restart or a network fault would): the
    cache empties and every token is checked in the database, so a token revoked in that
    moment is refused; once the listener is back the cache answers again."""
    tokens = stack.services.tokens
    extra = _listened_token(stack, officer, "extra")
    with stack.client(extra["token"]) as c:
        with stack.services.db.engine.begin() as conn:
            cut = [conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
                   for pid in extra["listeners"]]
        assert cut and all(cut)
        deadline = time.monotonic() + 5
        while tokens.listening:
            assert time.monotonic() < deadline, "the listener did not notice its lost connection"
            time.sleep(0.01)
        # Revoked while nobody listens: no notification reaches this process's cache.
        with stack.services.db.engine.begin() as conn:
            conn.execute(text("SET session_replication_role = replica"))  # no trigger, no notification
            conn.execute(text("UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE id = :id"),
                         {"id": extra["id"]})
        _refused(c, "token_revoked")
    with stack.client(officer) as c:
        _warm(stack, c)  # listening again: the cache answers


def test_a_listener_gone_silent_stops_the_cache_within_a_second(stack, officer):
    """The listener's server process stalls (as a network partition or a frozen server leaves a
    connection open and silent): its heartbeat gets no answer, so within a second the cache
    answers nothing, and a token revoked during the stall is refused, though the notification
    cannot reach this process."""
    from archive.identity import token_cache

    tokens = stack.services.tokens
    extra = _listened_token(stack, officer, "stalled")
    listeners = extra["listeners"]
    with stack.client(extra["token"]) as c:
        assert listeners
        for pid in listeners:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(token_cache.FRESH + token_cache.HEARTBEAT + 0.2)
            assert not tokens.listening
            run_sql(stack.services.db, "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE id = :id",
                    {"id": extra["id"]})
            _refused(c, "token_revoked")
        finally:
            for pid in listeners:
                os.kill(pid, signal.SIGCONT)
    with stack.client(officer) as c:
        _warm(stack, c)  # heard again: the cache answers
