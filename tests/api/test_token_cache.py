"""Tokens checked lately are answered from the API process's cache, and any change still
counts from the very next request: a token revoked (through the API, the command line in
another process, or straight in the database), a user disabled, demoted or moved to another
unit, a token expiring. On both stacks: triggers advance ``auth_version`` with every change,
and a cached check is used only at the version it was made."""

from __future__ import annotations

import time
import uuid

import pytest
from tests.conftest import run_cli, run_sql


@pytest.fixture
def admin(stack) -> str:  # type: ignore[no-untyped-def]
    return stack.user(role="admin", unit="hq")


def _warm(stack, client, path: str = "/api/v1/cases") -> None:  # type: ignore[no-untyped-def]
    """Two good requests; the second is answered from the cache."""
    tokens = stack.services.tokens
    hits = tokens.hits
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 200
    assert tokens.hits > hits, "the token cache did not answer"


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
