"""The caller comes first: a request without valid credentials is refused (401; a page sends
the browser to sign in) whatever else is wrong with it, on every route of the app, so no one
without an account learns how a route checks its parameters. Walks ``app.routes``."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute

from api.errors import _leaf_routes
from api.pages.base import PageRoute

PUBLIC = {
    ("/api/v1/trust/chain.pem", "GET"),  # certificates: a court fetches them without an account
    ("/api/v1/trust/evidence-verifier.tar.gz", "GET"),  # the offline verifier's code, for the same court
    ("/tsa", "POST"),  # RFC 3161 clients send no credentials
    ("/healthz", "GET"),
    ("/api/v1/uploads", "OPTIONS"), ("/api/v1/uploads/{upload_id}", "OPTIONS"),  # tus discovery
    # Signing in, and the second factor of a session that is still signing in.
    ("/login", "GET"), ("/login", "POST"), ("/login/oidc", "GET"), ("/login/oidc/callback", "GET"),
    ("/logout", "POST"), ("/login/second-factor", "GET"), ("/login/second-factor", "POST"),
    ("/account/totp", "GET"), ("/account/totp", "POST"),
}
"""Routes answering without an account (README, *Access*); every other one needs a caller."""

BAD_ID = quote("no such id; not one at all", safe="")
CALLERS = {
    "no credentials": {},
    "forged credentials": {"Authorization": "Bearer forged-3Ccw9mJ1bXk0oTQe6hYwPq",
                           "Cookie": "evidence_session=forged-session-value"},
}


def _routes(app):  # type: ignore[no-untyped-def]
    for route in _leaf_routes(app.routes):
        if not isinstance(route, APIRoute):
            continue  # /openapi.json, /docs, /redoc and /static: public by nature
        for method in sorted(route.methods):
            if (route.path, method) not in PUBLIC:
                yield route, method


def _query_names(dependant) -> list[str]:  # type: ignore[no-untyped-def]
    """The query parameters a route declares, its dependencies' too."""
    return [f.alias for f in dependant.query_params] + [n for d in dependant.dependencies for n in _query_names(d)]


def _requests(route: APIRoute) -> dict[str, tuple[str, dict[str, str], bytes | None]]:
    """The malformed requests to send to ``route``: (query, headers, body) by what is wrong."""
    declared = _query_names(route.dependant) or ["limit"]
    requests = {
        "repeated query parameter": ("&".join(f"{n}=1&{n}=2" for n in declared), {}, None),
        "ill-typed query parameter": ("&".join(f"{n}=not-a-number" for n in declared), {}, None),
        "malformed path id": ("", {}, None),
    }
    if route.body_field is not None:
        if isinstance(route, PageRoute):
            requests["malformed body"] = ("", {"Content-Type": "multipart/form-data; boundary=b0"},
                                          b"--b0\r\nContent-Disposition: form-data; name=\"x\r\n\r\nbroken")
        else:
            requests["malformed body"] = ("", {"Content-Type": "application/json"}, b'{"case_number": "X", ')
    return requests


def test_every_route_refuses_an_unknown_caller_before_checking_the_request(stack):
    routes = list(_routes(stack.api.app))
    assert len(routes) > 80  # the walk found the app's routes
    wrong = []
    with stack.client(None) as client:
        for route, method in routes:
            path = re.sub(r"\{[^}]+\}", BAD_ID, route.path)
            for what, (query, headers, body) in _requests(route).items():
                for who, credentials in CALLERS.items():
                    r = client.request(method, f"{path}?{query}" if query else path,
                                       headers={**credentials, **headers}, content=body)
                    if isinstance(route, PageRoute):
                        ok = r.status_code == 303 and r.headers["location"].startswith("/login")
                    else:
                        ok = r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
                        if method != "HEAD":
                            # A download's link parameters are a credential of their own: ill-typed, a bad link.
                            refusals = {"missing_token", "invalid_token"} | (
                                {"invalid_link"} if route.path == "/api/v1/exports/{export_id}/download" else set())
                            ok = ok and r.json()["error"]["code"] in refusals
                    if not ok:
                        wrong.append(f"{method} {route.path} ({what}, {who}): {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("bad", ["repeated", "ill-typed", "json"])
def test_a_known_caller_still_hears_what_is_wrong(stack, officer, bad):
    """Valid credentials: the request's own faults are answered as before (422)."""
    with stack.client(officer) as c:
        r = {
            "repeated": lambda: c.get("/api/v1/cases?limit=5&limit=6"),
            "ill-typed": lambda: c.get("/api/v1/cases?limit=many"),
            "json": lambda: c.post("/api/v1/cases", content=b'{"case_number": ',
                                   headers={"Content-Type": "application/json"}),
        }[bad]()
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
    assert "query.limit" in r.json()["error"]["message"] or bad == "json"
