"""``GET /metrics``: authenticated, Prometheus text, counting what the service does."""

from __future__ import annotations

import os
import re

import httpx
from pydantic import SecretStr

from archive import metrics
from tests.conftest import ApiServer


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` in a text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_metrics_needs_an_admin_or_the_metrics_token(stack, officer):
    with stack.client(None) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    with stack.client("not-a-token") as c:
        assert c.get("/metrics").json()["error"]["code"] == "invalid_token"
    with stack.client(officer) as c:
        r = c.get("/metrics")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role"
    with stack.client(stack.user(role="admin")) as c:
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_metrics_token(stack):
    token = "m" * 40
    api = ApiServer(stack.settings.model_copy(update={"metrics_token": SecretStr(token)}))
    try:
        # A fresh server's first answer, on a machine the rest of the suite keeps busy: httpx's
        # default 5 s timed out once in CI (the test is about the token, not the time).
        assert httpx.get(api.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code == 200
        assert httpx.get(api.url + "/metrics", headers={"Authorization": f"Bearer {token[:-1]}x"}, timeout=60).status_code == 401
    finally:
        api.stop()
        api.app.state.services.db.dispose()


def test_metrics_count_requests_uploads_ledger_and_reconciler(stack, officer, case):
    admin = stack.user(role="admin")
    with stack.client(admin) as c:
        before = c.get("/metrics").text
    data = os.urandom(300_000)
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "m.bin"}, content=data)
        assert r.status_code == 201, r.text
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 200
        assert c.get("/api/v1/cases/no-such-case").status_code == 404
    metrics.record_reconciler_action("requeued")
    with stack.client(admin) as c:
        after = c.get("/metrics").text
    route = "/api/v1/cases/{case_id}"

    def grew(name: str, by: float, **labels: str) -> bool:
        return _value(after, name, **labels) - _value(before, name, **labels) >= by

    assert grew("evidence_http_requests_total", 1, method="GET", route=route, status="200")
    assert grew("evidence_http_requests_total", 1, method="GET", route=route, status="404")
    assert grew("evidence_http_requests_total", 1, method="POST", route=route + "/evidence", status="201")
    assert grew("evidence_upload_bytes_total", len(data), protocol="direct")
    assert grew("evidence_upload_duration_seconds_count", 1, protocol="direct", outcome="ok")
    assert grew("evidence_reconciler_actions_total", 1, action="requeued")
    assert _value(after, "evidence_ledger_entries") >= 2  # the case and the evidence at least
    assert "\nevidence_ledger_waiting_entries " in after  # the sequencing backlog, 0 or more
    assert case["id"] not in after  # templates, never raw paths
