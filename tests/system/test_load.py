"""Fifty clients at once on each stack: reads, uploads, case creations and continuity
edits give no 5xx and no dropped connection, and every item uploaded ends sealed."""

from __future__ import annotations

from tests import load


def test_fifty_clients_mixed_load(stack):
    tokens = [stack.user(role="officer", unit=f"load-unit-{i}") for i in range(5)]
    admin = stack.user(role="admin", unit="load-hq")
    fx = load.prepare(stack.url, tokens)
    results, _wall = load.run(fx, clients=50, operations=6)
    assert results.failures == [], results.failures[:10]
    assert results.server_errors == 0 and results.transport_errors == 0, results.statuses()
    assert len(results.samples) == 300
    assert results.uploaded, "the mix uploaded nothing"
    left = load.wait_sealed(stack.url, admin, fx.items + results.uploaded, timeout=300)
    assert left == {}, left
