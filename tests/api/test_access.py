"""Identity and access as users and administrators meet it, on both stacks: accounts,
tokens that expire and are revoked, throttled sign-in, browser sessions with CSRF, the
second factor, and an authorization matrix generated from the application's own routes."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import urlencode

import httpx
import pyotp
import pytest
from sqlalchemy import select

from archive.models import LedgerEntry, User
from tests.conftest import ApiServer, Stack
from tests.tools import CLIENT_TLS, csrf_of, sign_in

PASSWORDLESS_PUBLIC = {
    # Routes anyone may reach (documentation, health, trust anchors, the time-stamping
    # authority, tus discovery, the sign-in form). Everything else must authenticate.
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
    ("GET", "/healthz"), ("GET", "/api/v1/trust/chain.pem"), ("GET", "/api/v1/trust/evidence-verifier.tar.gz"), ("POST", "/tsa"), ("GET", "/"),
    ("GET", "/login"), ("POST", "/login"), ("GET", "/login/oidc"), ("GET", "/login/oidc/callback"), ("OPTIONS", "/api/v1/uploads"), ("OPTIONS", "/api/v1/uploads/{upload_id}"),
}


def _address() -> str:
    """A local address of its own (all of 127/8 is loopback): a separate client to the throttle."""
    return "127.{}.{}.{}".format(*uuid.uuid4().bytes[:3])


def _ledger(stack: Stack, action: str) -> list[SimpleNamespace]:
    """Custody entries of ``action`` in the ledger's order, with their details parsed."""
    with stack.services.db.snapshot() as s:
        rows = s.execute(select(LedgerEntry).where(LedgerEntry.action == action).order_by(LedgerEntry.seq)).scalars()
        return [SimpleNamespace(action=e.action, details=json.loads(e.details)) for e in rows]


def _code(r: httpx.Response) -> str:
    return r.json()["error"]["code"]


@pytest.fixture
def admin(stack: Stack) -> str:
    return stack.user(role="admin", unit="hq")


def test_admin_manages_users_and_changes_hold_at_once(stack, admin):
    name = f"li-{uuid.uuid4().hex[:6]}"
    with stack.client(admin) as a:
        r = a.post("/api/v1/users", json={"name": name, "unit": "team-1", "role": "officer"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]["token"]
        assert any(u["name"] == name and u["active"] for u in a.get("/api/v1/users").json())
        with stack.client(token) as o:
            assert o.get("/api/v1/cases").status_code == 200
            assert o.get("/api/v1/users").status_code == 403
            assert a.patch(f"/api/v1/users/{name}", json={"active": False}).json()["active"] is False
            r = o.get("/api/v1/cases")
            assert r.status_code == 401 and _code(r) == "user_disabled"
            a.patch(f"/api/v1/users/{name}", json={"active": True})
            assert o.get("/api/v1/cases").status_code == 200
            moved = a.patch(f"/api/v1/users/{name}", json={"unit": "team-2", "role": "reviewer"}).json()
            assert moved["unit"] == "team-2" and moved["role"] == "reviewer"
    changes = [e.action for e in _ledger(stack, "user_disabled") + _ledger(stack, "user_enabled") + _ledger(stack, "user_changed")
               if e.details["user"] == name]
    assert sorted(changes) == ["user_changed", "user_disabled", "user_enabled"]
    with stack.client(None) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    assert "/api/v1/users" in paths and "/api/v1/tokens" in paths


BAD_USER_NAMES = ["a\u0001b", "evil\u202egnp.exe", " li.wei ", "li.wei ", "../../x", "team/x", "..", "a\\b",
                  "off\u200b1", "li\u00adwei", "wang\u2060fang", "off\u034f1", "off\ufe001", "off\u31641",
                  "\u115foff", "off\u28001"]


def test_the_last_active_administrator_stays_one(stack):
    """The last active administrator can be neither disabled nor given another role (409
    last_admin, nothing changed, by the API as by the command line's code); with a second
    one active, either may be."""
    from archive.identity.users import update_user
    from archive.models import Role, User

    with stack.services.db.session() as s:  # the archive is shared: its other administrators rest a while
        resting = [u.id for u in s.query(User).filter(User.role == Role.admin, User.active.is_(True))]
        s.query(User).filter(User.id.in_(resting)).update({"active": False})
    try:
        _one_administrator(stack)
    finally:
        with stack.services.db.session() as s:
            s.query(User).filter(User.id.in_(resting)).update({"active": True})


def _one_administrator(stack) -> None:  # type: ignore[no-untyped-def]
    from archive.identity.users import update_user

    name = f"root-{uuid.uuid4().hex[:6]}"
    root = stack.user(role="admin", unit="hq", name=name)
    with stack.client(root) as a:
        for change in ({"active": False}, {"role": "reviewer"}):
            r = a.patch(f"/api/v1/users/{name}", json=change)
            assert (r.status_code, _code(r)) == (409, "last_admin"), r.text
        me = next(u for u in a.get("/api/v1/users").json() if u["name"] == name)
        assert me["active"] is True and me["role"] == "admin"
        with stack.services.db.session() as s, pytest.raises(Exception, match="last active administrator"):
            update_user(s, name=name, actor="system:cli", active=False)
        second = f"root2-{uuid.uuid4().hex[:6]}"
        assert a.post("/api/v1/users", json={"name": second, "unit": "hq", "role": "admin"}).status_code == 201
        assert a.patch(f"/api/v1/users/{second}", json={"role": "reviewer"}).status_code == 200
        assert a.patch(f"/api/v1/users/{second}", json={"role": "admin"}).status_code == 200
        # Two administrators disabling each other at once: one does, the other is refused.
        from tests.tools import at_once

        tokens = {name: root, second: None}
        with stack.services.db.session() as s:
            from archive.identity.users import issue_token
            tokens[second] = issue_token(s, user=s.query(User).filter(User.name == second).one(), name="race",
                                         expires_in=None, actor="system:test")[1]
        for _round in range(5):
            pair = [(name, second), (second, name)]

            def disable(i: int) -> int:
                by, whom = pair[i]
                with stack.client(tokens[by]) as c:
                    return c.patch(f"/api/v1/users/{whom}", json={"active": False}).status_code
            assert sorted(at_once(2, disable)) in ([200, 409], [200, 401]), "a deadlock answers 503"
            with stack.services.db.session() as s:  # both active again for the next round
                s.query(User).filter(User.name.in_([name, second])).update({"active": True})
        assert a.patch(f"/api/v1/users/{name}", json={"active": False}).status_code == 200
        assert a.get("/api/v1/users").status_code == 401  # disabled, as asked


def test_a_user_name_that_would_not_read_or_route_as_given_is_refused(stack, admin):
    """A user's name is an actor in custody entries and a path segment of the users API:
    a name with a control or bidi character, padding, or a path separator is 422
    invalid_user_name and no user is made (zero-width characters too); one differing only in case or width from an existing
    user is 409 user_exists. A Chinese name is kept as given and can be managed."""
    with stack.client(admin) as a:
        before = len(a.get("/api/v1/users").json())
        for name in BAD_USER_NAMES:
            r = a.post("/api/v1/users", json={"name": name, "unit": "team-1", "role": "officer"})
            assert (r.status_code, _code(r)) == (422, "invalid_user_name"), (name, r.text)
        assert len(a.get("/api/v1/users").json()) == before
        plain = f"王芳.{uuid.uuid4().hex[:6]}"
        assert a.post("/api/v1/users", json={"name": plain, "unit": "执法一队", "role": "officer"}).status_code == 201
        r = a.post("/api/v1/users", json={"name": plain.upper(), "unit": "team-1", "role": "officer"})
        assert (r.status_code, _code(r)) == (409, "user_exists"), r.text
        # Full-width letters and digits read as the name they look like.
        wide = plain.upper().translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
        r = a.post("/api/v1/users", json={"name": wide, "unit": "team-1", "role": "officer"})
        assert (r.status_code, _code(r)) == (409, "user_exists"), r.text
        assert a.patch(f"/api/v1/users/{plain}", json={"active": False}).json()["active"] is False
        for unit in ("team\u202e1", "team\u200b1"):
            r = a.post("/api/v1/users", json={"name": f"u-{uuid.uuid4().hex[:6]}", "unit": unit, "role": "officer"})
            assert (r.status_code, _code(r)) == (422, "invalid_unit"), r.text


def test_tokens_listed_revoked_and_expiring(stack):
    officer = stack.user(role="officer")
    with stack.client(officer) as o:
        r = o.post("/api/v1/tokens", json={"name": "dock-7", "expires_in": 3600})
        assert r.status_code == 201, r.text
        issued = r.json()
        assert [t["name"] for t in o.get("/api/v1/tokens").json()][:1] == ["dock-7"]
        assert "token" not in o.get("/api/v1/tokens").json()[0]
        with stack.client(issued["token"]) as program:
            assert program.get("/api/v1/cases").status_code == 200
            assert o.delete(f"/api/v1/tokens/{issued['id']}").status_code == 200
            r = program.get("/api/v1/cases")
            assert r.status_code == 401 and _code(r) in ("token_revoked", "invalid_token")
        other = stack.user(role="officer")
        with stack.client(other) as stranger:  # another user's token: unknown to them
            assert stranger.delete(f"/api/v1/tokens/{issued['id']}").status_code == 404
    with stack.services.db.session() as s:
        from archive.identity.users import add_user

        _u, short = add_user(s, name=f"tmp-{uuid.uuid4().hex[:6]}", unit="unit-a", role="officer", expires_in=1)
    with stack.client(short) as c:
        assert c.get("/api/v1/cases").status_code == 200
        time.sleep(1.2)
        r = c.get("/api/v1/cases")
        assert r.status_code == 401 and _code(r) == "token_expired"


@pytest.mark.slow  # a dozen CLI processes
def test_cli_manages_users_and_tokens(stack):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    out = stack.cli("user", "add", "--name", name, "--unit", "team-9", "--role", "officer", "--expires-in", "3600")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert name in stack.cli("user", "list").stdout
    with stack.client(token) as c:
        assert c.get("/api/v1/cases").status_code == 200
        assert stack.cli("user", "disable", name).returncode == 0
        assert _code(c.get("/api/v1/cases")) == "user_disabled"
        assert stack.cli("user", "enable", name).returncode == 0
        assert c.get("/api/v1/cases").status_code == 200
    created = stack.cli("token", "create", "--user", name, "--name", "script", "--expires-in", "60")
    assert created.returncode == 0, created.stderr
    second = created.stdout.strip().splitlines()[-1]
    token_id = re.search(r"token (\S+) for", created.stderr).group(1)
    with stack.client(second) as c:
        assert c.get("/api/v1/cases").status_code == 200
        assert stack.cli("token", "revoke", token_id).returncode == 0
        assert c.get("/api/v1/cases").status_code == 401
    # Expiry and revocation as the corps reads them: local, with the offset, to the second.
    (line,) = [x for x in stack.cli("token", "list", "--user", name).stdout.splitlines() if x.startswith(token_id)]
    assert re.search(r"\texpires=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00\trevoked=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00$",
                     line), line
    assert stack.cli("user", "disable", "nobody-" + name).returncode != 0


@pytest.fixture
def strict_api(stack: Stack) -> Iterator[ApiServer]:
    """An API of the stack's database with the default throttle and TOTP required for
    reviewers and admins (the shared stack relaxes the per-client limit)."""
    settings = stack.settings.model_copy(update={"signin_max_failures_per_client": 20,
                                                 "require_totp_roles": "reviewer,admin"})
    api = ApiServer(settings)
    yield api
    api.stop()


def test_sign_in_is_throttled_per_client(stack, strict_api):
    """Past 20 failures an address's wrong tokens are 429 (guessing stops there, and is no
    longer written down), while a valid token from the same address still signs in: the
    officers of a station share its address."""
    officer = stack.user(role="officer")
    guesser = _address()
    with stack.client(None, address=guesser, url=strict_api.url) as b:
        csrf = csrf_of(b.get("/login").text)
        answers = [b.post("/login", data={"token": f"ev_guess{i}", "csrf_token": csrf}) for i in range(22)]
        assert [r.status_code for r in answers] == [401] * 20 + [429] * 2
        assert int(answers[-1].headers["retry-after"]) > 0 and "登录" in answers[-1].text
        r = b.get("/api/v1/cases", headers={"Authorization": "Bearer ev_another_guess"})
        assert r.status_code == 429 and _code(r) == "too_many_attempts" and "retry-after" in r.headers
        assert b.post("/login", data={"token": officer, "csrf_token": csrf}, follow_redirects=False).status_code == 303
        assert b.get("/cases", follow_redirects=False).status_code == 200
        assert b.get("/api/v1/cases", headers={"Authorization": f"Bearer {officer}"}).status_code == 200
    locked = [e for e in _ledger(stack, "access_locked_out") if e.details["key"] == guesser]
    assert len(locked) == 1 and locked[0].details["scope"] == "client"
    attempts = [e for e in _ledger(stack, "sign_in") if e.details["client"] == guesser]
    assert [e.details["outcome"] for e in attempts] == ["failure"] * 20 + ["success"]


def test_an_uploader_with_an_expired_token_locks_no_one_else_out(stack, strict_api):
    """A station's dock retries with a token that expired, from the address every officer of
    the station shares: it is refused (401, then 429), and their valid tokens and browser
    sessions go on working from that address."""
    from archive.identity.users import add_user

    with stack.services.db.session() as s:
        _u, dock = add_user(s, name=f"dock-{uuid.uuid4().hex[:6]}", unit="unit-a", role="officer", expires_in=1)
    officer = stack.user(role="officer", unit="unit-a")
    station = _address()
    with stack.client(None, address=station, url=strict_api.url) as b:
        b.follow_redirects = False
        assert sign_in(b, officer).status_code == 303
        time.sleep(1.5)
        codes = [_code(b.get("/api/v1/cases", headers={"Authorization": f"Bearer {dock}"})) for _ in range(25)]
        assert codes == ["token_expired"] * 20 + ["too_many_attempts"] * 5
        assert b.get("/api/v1/cases", headers={"Authorization": f"Bearer {officer}"}).status_code == 200
        assert b.get("/cases").status_code == 200  # the signed-in browser
        r = b.post("/api/v1/cases", headers={"Authorization": f"Bearer {officer}"},
                   json={"case_number": f"ST-{uuid.uuid4().hex[:8]}", "title": "still working"})
        assert r.status_code == 201, r.text


def test_random_tokens_are_throttled_on_the_api(stack, strict_api):
    with stack.client(None, address=_address(), url=strict_api.url) as c:
        codes = [c.get("/api/v1/cases", headers={"Authorization": f"Bearer ev_{i}"}).status_code for i in range(25)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}


def test_browser_session_csrf_and_cookie_on_the_api(stack, case):
    officer = stack.user(role="officer", unit="unit-a")
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        assert b.post("/login", data={"token": officer}).status_code == 403  # no CSRF field
        r = sign_in(b, officer)
        cookie = r.headers["set-cookie"].lower()
        assert "evidence_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert officer not in r.headers["set-cookie"]  # the cookie is a session, not the token
        page = b.get("/cases")
        csrf = csrf_of(page.text)
        assert b.get(f"/api/v1/cases/{case['id']}").status_code == 200
        body = {"case_number": f"C-{uuid.uuid4().hex[:8]}", "title": "by cookie"}
        r = b.post("/api/v1/cases", json=body)
        assert r.status_code == 403 and _code(r) == "csrf_failed"
        assert b.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
        assert b.post("/logout").status_code == 403  # the sign-out form without its token
        assert b.post("/logout", data={"csrf_token": csrf}).status_code == 303
        b.cookies.clear()
        b.cookies.set("evidence_session", cookie.split("evidence_session=")[1].split(";")[0])
        assert b.get("/api/v1/cases").status_code == 401  # ended on the server at once


def _enrol(browser: httpx.Client) -> tuple[pyotp.TOTP, list[str]]:
    page = browser.get("/account/totp")
    assert page.status_code == 200 and 'src="data:image/svg+xml' in page.text
    totp = pyotp.TOTP(re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page.text).group(1))
    done = browser.post("/account/totp", data={"code": totp.now(), "csrf_token": csrf_of(page.text)})
    assert done.status_code == 200, done.text
    return totp, re.findall(r"<li><code>([0-9a-f]+)</code></li>", done.text)


def test_totp_required_for_reviewers(stack, strict_api, case):
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(reviewer, url=strict_api.url) as api:  # a token of an unenrolled reviewer
        r = api.get("/api/v1/cases")
        assert r.status_code == 401 and _code(r) == "second_factor_required"
        assert api.post("/api/v1/tokens", json={"name": "x"}).status_code == 401
    with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
        r = sign_in(b, reviewer)
        assert r.headers["location"] == "/account/totp"
        for path in ("/cases", f"/cases/{case['id']}"):
            assert b.get(path).headers["location"] == "/login/second-factor"
        r = b.get("/api/v1/cases")
        assert r.status_code == 401 and _code(r) == "second_factor_required"
        reached = []
        second_factor_pages = {"/login/second-factor", "/account/totp", "/logout"}
        for method, path in sorted(set(_routes(strict_api.app))):
            if (method, path) in PASSWORDLESS_PUBLIC or path in second_factor_pages:
                continue
            r = b.request(method, _fill(path, {"case_id": case["id"]}), json={})
            if path.startswith(("/api/", "/metrics")):
                if r.status_code != 401 or (method != "HEAD" and "second_factor_required" not in r.text):
                    reached.append((method, path, r.status_code))
            elif not (r.status_code == 303 and r.headers["location"] == "/login/second-factor"):
                reached.append((method, path, r.status_code))
        assert reached == []
        totp, codes = _enrol(b)
        assert len(codes) == 10
        assert b.get("/cases").status_code == 200
        assert b.get(f"/api/v1/cases/{case['id']}").status_code == 200
    for code, expected in ((codes[0], 303), (codes[0], 401), ("000000", 401), (codes[1], 303)):
        with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
            sign_in(b, reviewer)
            assert b.get("/cases").headers["location"] == "/login/second-factor"
            form = b.get("/login/second-factor").text
            r = b.post("/login/second-factor", data={"code": code, "csrf_token": csrf_of(form)})
            assert r.status_code == expected, (code, r.text)
            assert b.get("/cases").status_code == (200 if expected == 303 else 303)
    with stack.client(reviewer, url=strict_api.url) as api:  # enrolled: tokens work and may be issued
        assert api.get("/api/v1/cases").status_code == 200
        assert api.post("/api/v1/tokens", json={"name": "reviewer-script"}).status_code == 201


def _full_width(code: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) for ch in code)


def test_a_code_typed_in_full_width_digits_is_read_as_meant(stack, strict_api):
    """A Chinese input method in full-width mode types ``１２３４５６``: str.isdigit() let it
    through to hmac.compare_digest, which refuses non-ASCII text: enrolment and every sign-in
    with a second factor answered 500. A full-width TOTP or recovery code is the code it reads
    as; other scripts' digits (``١٢٣٤٥٦``) are a wrong code, refused, never a 500."""
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
        sign_in(b, reviewer)
        page = b.get("/account/totp")
        totp = pyotp.TOTP(re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page.text).group(1))
        for wrong in ("\u0661\u0662\u0663\u0664\u0665\u0666", "\u00b9\u00b2\u00b3\u2074\u2075\u2076x"):
            r = b.post("/account/totp", data={"code": wrong, "csrf_token": csrf_of(page.text)})
            # Said in the page's language (Chinese here), not the domain's English message.
            assert r.status_code == 422 and "验证码无效" in r.text and "that code is not valid" not in r.text, r.text[-800:]
        done = b.post("/account/totp", data={"code": _full_width(totp.now()), "csrf_token": csrf_of(page.text)})
        assert done.status_code == 200, done.text[-500:]
        codes = re.findall(r"<li><code>([0-9a-f]+)</code></li>", done.text)
    # The next step's code (one step of drift is allowed): the step enrolment used works only once.
    for code, expected in ((_full_width(totp.at(time.time() + totp.interval)), 303), ("\u0661\u0662\u0663\u0664\u0665\u0666", 401),
                           (" " + _full_width(codes[0].upper()) + " ", 303)):
        with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
            sign_in(b, reviewer)
            form = b.get("/login/second-factor").text
            r = b.post("/login/second-factor", data={"code": code, "csrf_token": csrf_of(form)})
            assert r.status_code == expected, (code, r.status_code, r.text[-500:])


def test_first_totp_enrolment_goes_on_to_the_page_asked_for(stack, strict_api, case):
    """A reviewer sent to sign in from a case page, enrolling a second factor for the first
    time, is carried through the enrolment and offered that page after the recovery codes (not
    the role's home); a ``next`` naming another site leads home."""
    wanted = f"/cases/{case['id']}?items_page=1"
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
        form = b.get("/login", params={"next": wanted}).text
        r = b.post("/login", data={"token": reviewer, "csrf_token": csrf_of(form), "next": wanted})
        assert r.headers["location"] == "/account/totp?" + urlencode({"next": wanted}, safe="/")
        # Sent to the second factor's page first (as a page asking for it does), the same.
        r = b.get("/login/second-factor", params={"next": wanted})
        assert r.headers["location"] == "/account/totp?" + urlencode({"next": wanted}, safe="/")
        page = b.get(r.headers["location"])
        assert f'name="next" value="{html.escape(wanted)}"' in page.text
        totp = pyotp.TOTP(re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page.text).group(1))
        done = b.post("/account/totp", data={"code": totp.now(), "csrf_token": csrf_of(page.text), "next": wanted})
        assert done.status_code == 200 and 'data-testid="recovery-codes"' in done.text
        onward = html.unescape(re.search(r'href="([^"]+)" data-testid="totp-continue"', done.text).group(1))
        assert onward == wanted
        assert b.get(onward).status_code == 200
    other = stack.user(role="reviewer", unit="unit-a")
    with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
        form = b.get("/login").text
        r = b.post("/login", data={"token": other, "csrf_token": csrf_of(form), "next": "//evil.example/x"})
        assert r.headers["location"] == "/account/totp"
        page = b.get("/account/totp", params={"next": "//evil.example/x"})
        assert 'name="next"' not in page.text
        totp = pyotp.TOTP(re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page.text).group(1))
        done = b.post("/account/totp", data={"code": totp.now(), "csrf_token": csrf_of(page.text),
                                             "next": "https://evil.example/"})
        assert re.search(r'href="/queue" data-testid="totp-continue"', done.text), done.text


# --- the authorization matrix, generated from the routes ------------------------------


def _routes(app) -> Iterator[tuple[str, str]]:
    def walk(routes):  # type: ignore[no-untyped-def]
        for r in routes:
            if hasattr(r, "original_router"):  # an included router (FastAPI keeps them nested)
                yield from walk(r.original_router.routes)
            else:
                yield r
    for route in walk(app.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" or route.methods == {"HEAD"}:
                yield method, route.path


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)


def _states(stack: Stack) -> dict[str, str | None]:
    """Credentials that must all be refused: none, expired, revoked, disabled."""
    from archive.identity.users import add_user, list_tokens, revoke_token, update_user

    with stack.services.db.session() as s:
        _u, expired = add_user(s, name=f"exp-{uuid.uuid4().hex[:6]}", unit="unit-a", role="admin", expires_in=1)
        u, revoked = add_user(s, name=f"rev-{uuid.uuid4().hex[:6]}", unit="unit-a", role="admin")
        for t in list_tokens(s, user=u):
            revoke_token(s, token_id=t.id, actor="test")
        d, disabled = add_user(s, name=f"dis-{uuid.uuid4().hex[:6]}", unit="unit-a", role="admin")
        update_user(s, name=d.name, actor="test", active=False)
    time.sleep(1.1)
    return {"anonymous": None, "expired": expired, "revoked": revoked, "disabled": disabled}


@pytest.mark.slow  # every route, every role
def test_authorization_matrix_from_the_route_table(stack, case):
    with stack.client(stack.user(role="officer", unit="unit-other")) as c:
        other_case = c.post("/api/v1/cases", json={"case_number": f"O-{uuid.uuid4().hex[:8]}", "title": "other"}).json()
        other_item = c.post(f"/api/v1/cases/{other_case['id']}/evidence", params={"kind": "other", "filename": "o.bin"},
                            content=b"other unit's evidence").json()["id"]
    with stack.services.db.read() as s:
        someone = s.execute(select(User.name)).scalars().first()
    foreign = {"case_id": other_case["id"], "item_id": other_item, "name": someone}
    routes = sorted(set(_routes(stack.api.app)))
    assert ("GET", "/api/v1/users") in routes and ("DELETE", "/api/v1/tokens/{token_id}") in routes
    leaks = []
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as c:
        for state, token in _states(stack).items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for method, path in routes:
                if (method, path) in PASSWORDLESS_PUBLIC:
                    continue
                r = c.request(method, _fill(path, foreign), headers=headers, json={})
                page = not path.startswith(("/api/", "/metrics"))
                ok = r.status_code in ((303, 403) if page else (401,))
                if page and r.status_code == 303:
                    ok = r.headers["location"] == "/login"
                if not ok:
                    leaks.append((state, method, path, r.status_code))
        for role in ("officer", "reviewer", "court", "admin"):
            token = stack.user(role=role, unit="unit-a")
            for method, path in routes:
                if (method, path) in PASSWORDLESS_PUBLIC or "{" not in path or path.startswith("/api/v1/users"):
                    continue
                r = c.request(method, _fill(path, foreign), headers={"Authorization": f"Bearer {token}"}, json={})
                if role == "admin" and ("case_id" in path or "item_id" in path):
                    continue  # admins see every unit's cases by design
                if role == "court" and (method, path) == ("GET", "/api/v1/cases/{case_id}/exports") and r.json() == []:
                    continue  # a court user lists only exports shared with them: [] for any case id
                if r.status_code not in (303, 403, 404, 405, 412, 422):  # 412: tus precondition
                    leaks.append((role, method, path, r.status_code))
                elif "{case_id}" not in path and other_case["id"] in r.text:
                    leaks.append((role, method, path, "names the other unit's case"))
            if role != "admin":
                for method, path in (("GET", "/api/v1/users"), ("GET", "/api/v1/users/{name}"),
                                     ("PATCH", "/api/v1/users/{name}"), ("GET", "/api/v1/users/{name}/tokens")):
                    r = c.request(method, _fill(path, foreign), headers={"Authorization": f"Bearer {token}"}, json={})
                    if r.status_code != 403:
                        leaks.append((role, method, path, r.status_code))
            listing = c.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
            if role != "admin" and other_case["case_number"] in listing.text:
                leaks.append((role, "GET", "/api/v1/cases", "lists another unit's case"))
    assert leaks == []


def test_tokens_issued_before_the_migration_keep_working(stack, tmp_path):
    from sqlalchemy import text

    from archive import db as archive_db
    from archive.db import Database
    from archive.identity.users import authenticate, hash_token
    from tests.conftest import settings_from_env
    from tests.servers import create_pg_database, drop_pg_database

    env = dict(stack.env, EVIDENCE_DATA_DIR=str(tmp_path / "data"))
    pg = create_pg_database() if stack.name == "services" else None
    if pg:
        env["EVIDENCE_DATABASE_URL"] = pg
    settings = settings_from_env(env)
    try:
        archive_db.upgrade(settings, revision="0008")
        database = Database(settings)
        old = "ev_" + uuid.uuid4().hex
        with database.engine.begin() as c:
            c.execute(text("INSERT INTO units (id, name, created_at) VALUES ('u1', 'team', :t)"), {"t": "2026-01-01T00:00:00+00:00"})
            c.execute(text("INSERT INTO users (id, name, role, unit_id, token_hash, active, created_at) "
                           "VALUES ('p1', 'old-timer', 'officer', 'u1', :h, :a, :t)"),
                      {"h": hash_token(old), "a": True, "t": "2026-01-01T00:00:00+00:00"})
        archive_db.upgrade(settings)
        with database.read() as s:
            assert authenticate(s, token=old).name == "old-timer"
            # The retired column no longer holds anything a token hashes to.
            assert s.execute(text("SELECT token_hash FROM users")).scalar_one() != hash_token(old)
        database.dispose()
    finally:
        if pg:
            drop_pg_database(pg)


def test_every_page_form_refuses_a_post_without_its_csrf_token(stack):
    officer = stack.user(role="officer")
    forms = [path for method, path in _routes(stack.api.app) if method == "POST" and not path.startswith(("/api/", "/tsa"))]
    assert "/login" in forms and "/logout" in forms
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        sign_in(b, officer)
        for path in forms:
            r = b.post(_fill(path, {}), data={"token": officer, "code": "123456"})
            assert r.status_code == 403 and "csrf_failed" in r.text, (path, r.status_code)
            r = b.post(_fill(path, {}), data={"token": officer, "code": "123456", "csrf_token": "0" * 64})
            assert r.status_code == 403, path
            # Text that is not ASCII was a 500 (compare_digest refuses it), also before signing in.
            r = b.post(_fill(path, {}), data={"token": officer, "code": "123456", "csrf_token": "令牌é"})
            assert r.status_code == 403 and "csrf_failed" in r.text, (path, r.status_code)
        assert b.get("/cases").status_code == 200  # still signed in: nothing was done
        r = b.post("/api/v1/cases", json={"case_number": "X-1", "title": "t"}, headers={"X-CSRF-Token": "é".encode()})
        assert r.status_code == 403 and _code(r) == "csrf_failed", r.text
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        b.get("/login")
        r = b.post("/login", data={"token": officer, "csrf_token": "é"})
        assert r.status_code == 403 and "csrf_failed" in r.text, r.status_code


def test_second_factor_guesses_are_throttled_per_account(stack, strict_api):
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with httpx.Client(verify=CLIENT_TLS, base_url=strict_api.url, follow_redirects=False, timeout=60) as b:
        sign_in(b, reviewer)
        _enrol(b)
    answers = []
    for _ in range(11):  # a new client address for each guess: only the account limit applies
        with stack.client(None, address=_address(), url=strict_api.url) as b:
            b.follow_redirects = False
            sign_in(b, reviewer)
            form = b.get("/login/second-factor").text
            answers.append(b.post("/login/second-factor", data={"code": "000000", "csrf_token": csrf_of(form)}).status_code)
    assert answers == [401] * 10 + [429]
    name = reviewer_name(stack, reviewer)
    assert any(e.details["scope"] == "account" and e.details["key"] == name for e in _ledger(stack, "access_locked_out"))


def reviewer_name(stack: Stack, token: str) -> str:
    from archive.identity.users import authenticate

    with stack.services.db.read() as s:
        return authenticate(s, token=token).name


def test_court_user_sees_only_what_is_shared_with_them(stack, case):
    """A court user of the very unit that holds the case reaches none of it through any
    route of the table; an export addressed to them is what they see."""
    court = stack.user(role="court", unit="unit-a")
    officer = stack.user(role="officer", unit="unit-a")
    with stack.client(officer) as o:
        item = o.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "c.bin"},
                      content=b"court must not read this").json()["id"]
    own = {"case_id": case["id"], "item_id": item}
    reached = []
    with stack.client(court) as c:
        for method, path in sorted(set(_routes(stack.api.app))):
            if method != "GET" or (method, path) in PASSWORDLESS_PUBLIC or not path.startswith("/api/v1/"):
                continue
            r = c.get(_fill(path, own))
            if r.status_code == 200 and (case["id"] in r.text or case["case_number"] in r.text or item in r.text):
                reached.append(path)
        assert reached == []
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        sign_in(b, court)
        assert case["case_number"] not in b.get("/cases").text
        assert b.get(f"/cases/{case['id']}").status_code in (403, 404)
    court_name = reviewer_name(stack, court)
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(reviewer) as r:
        export = r.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": court_name, "items": [item]})
        assert export.status_code == 201, export.text
    with stack.client(court) as c:
        assert [e["id"] for e in c.get("/api/v1/exports").json()] == [export.json()["id"]]
        assert [x["id"] for x in c.get("/api/v1/cases").json()] == [case["id"]]
        assert c.get(f"/api/v1/evidence/{item}").status_code in (403, 404)


def test_single_sign_on_is_not_found_when_not_configured(stack):
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        assert 'href="/login/oidc"' not in b.get("/login").text
        assert b.get("/login/oidc").status_code == 404
        assert b.get("/login/oidc/callback", params={"code": "x", "state": "y"}).status_code == 404


def test_an_unreachable_throttle_store_does_not_lock_everyone_out(stack, caplog):
    """Redis down: credentials are still checked in full, only the counting stops (logged)."""
    settings = stack.settings.model_copy(update={"throttle_storage_url": "redis://127.0.0.1:9/0"})
    api = ApiServer(settings)
    officer = stack.user(role="officer")
    try:
        with stack.client(officer, url=api.url) as c:
            assert c.get("/api/v1/cases").status_code == 200
        with stack.client("ev_wrong", url=api.url) as c:
            r = c.get("/api/v1/cases")
            assert r.status_code == 401 and _code(r) == "invalid_token"
    finally:
        api.stop()
        api.app.state.services.db.dispose()
    assert any("throttle storage unavailable" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("change, answer", [
    ({"active": False}, (401, "user_disabled")),
    ({"unit": "unit-elsewhere"}, (404, "case_not_found")),
], ids=["disabled", "moved-to-another-unit"])
def test_an_upload_is_refused_if_its_uploader_lost_the_right_while_it_streamed(stack, change, answer):
    """Access is checked when an upload begins and again when it is kept: a large upload
    streams for hours, and an officer disabled or moved to another unit meanwhile must not
    add evidence to the case then. Nothing of it is kept."""
    import threading

    from archive.identity.users import update_user

    name = f"mover-{uuid.uuid4().hex[:6]}"
    token = stack.user(role="officer", unit="unit-a", name=name)
    with stack.client(token) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"RE-{uuid.uuid4().hex[:8]}", "title": "Recheck"}).json()
    arrived, changed = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield b"first half of the statement " * 100
        arrived.set()
        changed.wait(30)
        yield b"second half" * 100

    outcome: list[httpx.Response] = []
    with stack.client(token) as c:
        sender = threading.Thread(target=lambda: outcome.append(c.post(
            f"/api/v1/cases/{case['id']}/evidence", content=body(), params={"kind": "document", "filename": "s.txt"})))
        sender.start()
        assert arrived.wait(30)
        time.sleep(0.5)  # the first part has reached the API
        with stack.services.db.session() as s:
            update_user(s, name=name, actor="admin:test", **change)
        changed.set()
        sender.join(60)
    r = outcome[0]
    assert (r.status_code, r.json()["error"]["code"]) == answer, r.text
    assert list(stack.services.store.list(case["vault"] + "/")) == []
    with stack.services.db.snapshot() as s:
        received = s.execute(select(LedgerEntry.seq).where(LedgerEntry.case_id == case["id"],
                                                          LedgerEntry.action == "evidence_received")).all()
    assert received == []


def test_a_unit_typed_with_another_width_case_or_spacing_is_the_same_unit(stack, admin):
    """An administrator adding an officer to "Team　1" (an ideographic space, as a Chinese
    keyboard types it), "ＴＥＡＭ 1" or "team  1" means Team 1: a new unit there would leave
    the officer seeing none of the team's cases."""
    team = f"Team {uuid.uuid4().hex[:4]}"
    first = stack.user(role="officer", unit=team)
    with stack.client(first) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"U-{uuid.uuid4().hex[:6]}", "title": "Team case"}).json()
    wide = team.upper().translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    with stack.client(admin) as a:
        for typed in (team.replace(" ", "\u3000"), wide, team.lower().replace(" ", "  "), f" {team} "):
            name = f"u-{uuid.uuid4().hex[:6]}"
            r = a.post("/api/v1/users", json={"name": name, "unit": typed, "role": "officer"})
            assert r.status_code == 201 and r.json()["user"]["unit"] == team, (typed, r.text)
            token = r.json()["token"]["token"]
            with stack.client(token) as c:
                assert c.get(f"/api/v1/cases/{case['id']}").status_code == 200, typed


def test_a_case_title_that_would_not_read_as_given_is_refused(stack):
    officer = stack.user(role="officer")
    with stack.client(officer) as c:
        for title in ("a\u0007b", "paid \u202eeerf", "a\u200bb", "  ", "line\nbreak"):
            r = c.post("/api/v1/cases", json={"case_number": f"T-{uuid.uuid4().hex[:6]}", "title": title})
            assert (r.status_code, _code(r)) == (422, "invalid_title"), (title, r.text)
        r = c.post("/api/v1/cases", json={"case_number": f"T-{uuid.uuid4().hex[:6]}", "title": "无证经营 (网络直播)"})
        assert r.status_code == 201 and r.json()["title"] == "无证经营 (网络直播)"


def test_a_single_sign_on_state_that_is_not_ascii_is_refused_not_500():
    """The provider's redirect carries ``state`` back as the browser sends it: ``?state=é``
    reached compare_digest as text, a TypeError (500); it is a refused sign-in, ``sso_refused``."""
    from archive.identity import sso
    from archive.settings import Settings

    pending = sso.PendingLogin(state="s" * 43, nonce="n" * 43, verifier="v" * 43)
    for state in ("é", "令牌", "s" * 42 + "é"):
        with pytest.raises(sso.SsoRefused):
            sso.finish(Settings(), pending=pending, params={"state": state, "code": "x"}, redirect_uri="http://x/cb")
