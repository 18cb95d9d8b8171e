"""Single sign-on against a real OpenID Provider: oidc-provider (OpenID Certified) run with
Node.js by the fixture, its development login and consent pages driven like a browser."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest
from sqlalchemy import select

from archive.models import LedgerEntry, User
from tests.conftest import ApiServer, Stack
from tests.servers import free_port, wait_port
from tests.tools import CLIENT_TLS, unavailable

# A Node.js OpenID Provider and browser-like sign-in flows through it.
pytestmark = pytest.mark.slow
OIDC_DIR = Path(__file__).parents[1] / "oidc"
CLIENT = {"client_id": "evidence-archive", "client_secret": "test-secret-" + uuid.uuid4().hex}


@pytest.fixture(scope="module")
def sso(stack: Stack, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The stack's database behind an API configured for the provider, and the provider."""
    if not shutil.which("node") or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        unavailable("Node.js or the test OpenID Provider is not installed (bash scripts/setup.sh)")
    tmp_path = tmp_path_factory.mktemp("oidc")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    accounts = {
        "dir.officer": {"role": "officer", "unit": "unit-sso"},
        "dir.mover": {"role": "reviewer", "unit": "unit-sso-2"},
        "dir.nobody": {},
    }
    settings = stack.settings.model_copy(update={
        "oidc_issuer": issuer, "oidc_client_id": CLIENT["client_id"],
        "oidc_client_secret": __import__("pydantic").SecretStr(CLIENT["client_secret"]),
    })
    api = ApiServer(settings)
    env = dict(os.environ, OIDC_ACCOUNTS=json.dumps(accounts),
               OIDC_CLIENT=json.dumps({**CLIENT, "redirect_uri": f"{api.url}/login/oidc/callback"}))
    log = open(tmp_path / "provider.log", "wb")
    provider = subprocess.Popen(["node", "provider.mjs", str(port)], cwd=OIDC_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_port(port, 20):
            raise RuntimeError("the OpenID Provider did not start: " + (tmp_path / "provider.log").read_text())
        yield SimpleNamespace(api=api, issuer=issuer, stack=stack)
    finally:
        provider.terminate()
        provider.wait(10)
        log.close()
        api.stop()


def _submit(browser: httpx.Client, page: httpx.Response, login: str) -> httpx.Response:
    """Fill the provider's login or consent form the way a person would."""
    form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page.text, re.S)
    assert form, page.text
    fields = {m.group(1): html.unescape(m.group(2)) for m in
              re.finditer(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2))}
    if 'name="login"' in form.group(2):
        fields.update(login=login, password="any")
    return browser.post(urljoin(str(page.url), html.unescape(form.group(1))), data=fields)


def _through_provider(browser: httpx.Client, start: httpx.Response, login: str, api_url: str) -> str:
    """Follow the provider's redirects and forms until it sends the browser back to us."""
    r = start
    for _ in range(12):
        if r.status_code in (302, 303):
            location = urljoin(str(r.url), r.headers["location"])
            if location.startswith(api_url):
                return location
            r = browser.get(location)
        elif r.status_code == 200 and "<form" in r.text:
            r = _submit(browser, r, login)
        else:
            raise AssertionError(f"unexpected answer from the provider: {r.status_code} {r.text[:500]}")
    raise AssertionError("the provider never sent the browser back")


def _sign_ins(stack: Stack, method: str = "oidc") -> list[dict]:
    with stack.services.db.snapshot() as s:
        rows = s.execute(select(LedgerEntry.details).where(LedgerEntry.action == "sign_in")).scalars()
        return [d for d in (json.loads(r) for r in rows) if d["method"] == method]


def test_sso_provisions_a_user_from_the_directory_and_signs_in(sso):
    with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30) as b:
        assert 'href="/login/oidc"' in b.get("/login").text
        start = b.get("/login/oidc")
        assert start.headers["location"].startswith(sso.issuer)
        query = parse_qs(urlparse(start.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
        back = _through_provider(b, b.get(start.headers["location"]), "dir.officer", sso.api.url)
        r = b.get(back)
        assert r.status_code == 303 and r.headers["location"] == "/cases", r.text
        page = b.get("/cases")
        assert page.status_code == 200 and "dir.officer" in page.text and "unit-sso" in page.text
        assert b.get("/api/v1/cases").status_code == 200  # the session works on the API too
    with sso.stack.services.db.read() as s:
        user = s.execute(select(User).where(User.name == "dir.officer")).scalar_one()
        assert user.external_subject == "dir.officer" and user.role.value == "officer" and user.unit.name == "unit-sso"
    assert any(d["outcome"] == "success" and d.get("user") == "dir.officer" for d in _sign_ins(sso.stack))


def test_sso_returns_to_the_page_asked_for_and_only_to_this_site(sso):
    """A reader sent to sign in from a page, who signs in through the directory, lands on that
    page (its ``next`` carried to the provider and back), not on the role's home; a ``next``
    naming another site, however written, leads home."""
    wanted = "/cases?mine=true"
    with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30) as b:
        form = b.get("/login", params={"next": wanted}).text
        link = html.unescape(re.search(r'href="([^"]+)" data-testid="sso"', form).group(1))
        assert urlparse(link).path == "/login/oidc" and parse_qs(urlparse(link).query) == {"next": [wanted]}, link
        start = b.get(link)
        back = _through_provider(b, b.get(start.headers["location"]), "dir.officer", sso.api.url)
        r = b.get(back)
        assert r.status_code == 303 and r.headers["location"] == wanted, r.text
        assert b.get(wanted).status_code == 200
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/login?next=/x"):
        with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30) as b:
            assert 'href="/login/oidc" ' in b.get("/login", params={"next": hostile}).text
            start = b.get("/login/oidc", params={"next": hostile})
            back = _through_provider(b, b.get(start.headers["location"]), "dir.officer", sso.api.url)
            r = b.get(back)
            assert r.status_code == 303 and r.headers["location"] == "/cases", (hostile, r.headers["location"])


def test_sso_role_and_unit_follow_the_directory(sso):
    sso.stack.user(role="officer", unit="unit-a", name="dir.mover")  # a local user of that name
    with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30) as b:
        start = b.get("/login/oidc")
        back = _through_provider(b, b.get(start.headers["location"]), "dir.mover", sso.api.url)
        assert b.get(back).status_code == 303
    with sso.stack.services.db.read() as s:
        user = s.execute(select(User).where(User.name == "dir.mover")).scalar_one()
        assert (user.role.value, user.unit.name) == ("reviewer", "unit-sso-2")


@pytest.mark.parametrize("tamper", ["state", "nonce"])
def test_sso_refuses_a_wrong_state_or_nonce(sso, tamper):
    with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30,
                      cookies={"evidence_lang": "en"}) as b:  # the reason is read in English
        start = b.get("/login/oidc")
        back = _through_provider(b, b.get(start.headers["location"]), "dir.officer", sso.api.url)
        if tamper == "state":
            back = re.sub(r"state=[^&]+", "state=forged", back)
        else:  # the browser comes back with an ID token minted for another sign-in's nonce
            pending = json.loads(base64.urlsafe_b64decode(b.cookies["evidence_oidc"]))
            pending["nonce"] = "another-nonce"
            b.cookies.delete("evidence_oidc")
            b.cookies.set("evidence_oidc", base64.urlsafe_b64encode(json.dumps(pending).encode()).decode(),
                          domain="127.0.0.1", path="/login/oidc")
        r = b.get(back)
        assert r.status_code == 401 and "refused" in r.text and tamper in r.text
        assert "evidence_session" not in r.headers.get("set-cookie", "")
        assert b.get("/cases").status_code == 303
    assert any(d["outcome"] == "failure" and tamper in d.get("reason", "") for d in _sign_ins(sso.stack))


def test_sso_refuses_a_directory_user_without_role_and_unit(sso):
    """The refusal is ours: the Chinese sign-in page says it in Chinese, the English one in English."""
    for lang in ("zh", "en"):
        with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30,
                          cookies={"evidence_lang": lang}) as b:
            start = b.get("/login/oidc")
            back = _through_provider(b, b.get(start.headers["location"]), "dir.nobody", sso.api.url)
            r = b.get(back)
            assert r.status_code == 401
            if lang == "zh":
                assert "统一身份认证被拒绝：没有用户 &#39;dir.nobody&#39;，目录也未提供可用于创建该用户的角色和单位" in r.text, r.text
                assert "role and unit" not in r.text
            else:
                assert "role and unit" in r.text


def test_sso_refused_by_the_provider_keeps_its_words_marked_as_the_providers(sso):
    """The provider's own error and description are not ours to translate: the Chinese sign-in page
    says the refusal in Chinese and quotes the provider's words as the provider's; the English page
    keeps the English; the failed sign-in records the reason as the service words it."""
    words = "access_denied End-User aborted interaction"
    pages = {}
    for lang in ("zh", "en"):
        with httpx.Client(verify=CLIENT_TLS, base_url=sso.api.url, follow_redirects=False, timeout=30,
                          cookies={"evidence_lang": lang}) as b:
            start = b.get("/login/oidc")
            state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
            r = b.get("/login/oidc/callback", params={"state": state, "error": "access_denied",
                                                       "error_description": "End-User aborted interaction"})
            assert r.status_code == 401
            pages[lang] = r.text
    assert f"统一身份认证被拒绝：认证服务拒绝了此次登录，认证服务的原话为：“{words}”" in pages["zh"], pages["zh"]
    assert "the provider refused" not in pages["zh"]
    assert f"Single sign-on was refused: the provider refused: {words}" in pages["en"]
    assert any(d["outcome"] == "failure" and d.get("reason") == f"the provider refused: {words}"
               for d in _sign_ins(sso.stack))
