"""Fixity audits on both stacks: a byte flipped in the store, an object deleted or
overwritten behind the archive's back, are detected and flag the item and its case."""

from __future__ import annotations

import io
import logging
import random

import pytest

from archive import work
from archive.evidence import fixity
from archive.models import EvidenceItem
from tests.conftest import Stack


def _upload(stack: Stack, token: str, case_id: str, data: bytes, name: str) -> dict:
    with stack.client(token) as c:
        r = c.post(f"/api/v1/cases/{case_id}/evidence", params={"kind": "other", "filename": name}, content=data)
        assert r.status_code == 201, r.text
        return r.json()


def _audit(stack: Stack, item_ids: list[str]) -> fixity.AuditRun:
    return fixity.run_audit(db=stack.services.db, store=stack.services.store, settings=stack.settings,
                            item_ids=item_ids)


def _flip_in_store(stack: Stack, key: str) -> None:
    """Change one byte of a stored object as an insider with store access could."""
    if stack.name == "embedded":
        path = stack.settings.resolved_storage_dir / key
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
        return
    # On S3 the locked version cannot change: the insider can only put a new version on top.
    store = stack.services.store
    data = bytearray(b"".join(store.read(key)))
    data[len(data) // 2] ^= 0x40
    store.client.put_object(store.bucket, key, io.BytesIO(bytes(data)), len(data))


def _delete_in_store(stack: Stack, key: str) -> None:
    if stack.name == "embedded":
        path = stack.settings.resolved_storage_dir / key
        path.parent.chmod(0o755)
        path.chmod(0o644)
        path.unlink()
        return
    # The locked version cannot be removed; a plain delete leaves a delete marker on top.
    store = stack.services.store
    store.client.remove_object(store.bucket, key)


@pytest.fixture
def items(stack: Stack, officer: str, case: dict) -> list[dict]:
    rng = random.Random(7)
    return [_upload(stack, officer, case["id"], rng.randbytes(50_000 + i), f"f{i}.bin") for i in range(3)]


def test_intact_objects_pass_and_are_recorded(stack: Stack, officer, case, items) -> None:
    run = _audit(stack, [i["id"] for i in items])
    assert not run.failures and len(run.items) == 3
    assert run.bytes_read >= sum(i["size"] for i in items)
    with stack.services.db.session() as s:
        for i in items:
            row = s.get(EvidenceItem, i["id"])
            assert row.last_fixity_at is not None and "fixity_failed" not in row.flags
    # Running again checks again: one entry per check, never a duplicate of the same check.
    from archive.custody import ledger

    with stack.services.db.session() as s:
        assert ledger.count_actions(s, item_id=items[0]["id"], action="fixity_checked") == 1


def test_flipped_byte_and_deleted_object_are_flagged(stack: Stack, officer, case, items, caplog) -> None:
    flipped, deleted, fine = items
    _flip_in_store(stack, flipped["storage_key"])
    _delete_in_store(stack, deleted["storage_key"])
    with caplog.at_level(logging.ERROR, logger="archive.evidence.fixity"):
        run = _audit(stack, [i["id"] for i in items])
    outcomes = {a.item_id: {c.outcome for c in a.checks if c.role == "original"} for a in run.items}
    assert outcomes[flipped["id"]] == {"fixity_failed"}
    assert outcomes[deleted["id"]] == {"missing_object"}
    assert outcomes[fine["id"]] == {"ok"}
    assert sum("FIXITY ALERT" in r.message for r in caplog.records) == 2
    with stack.client(officer) as c:
        assert "fixity_failed" in c.get(f"/api/v1/evidence/{flipped['id']}").json()["flags"]
        assert "missing_object" in c.get(f"/api/v1/evidence/{deleted['id']}").json()["flags"]
        assert not {"fixity_failed", "missing_object"} & set(c.get(f"/api/v1/evidence/{fine['id']}").json()["flags"])
        assert {"fixity_failed", "missing_object"} <= set(c.get(f"/api/v1/cases/{case['id']}").json()["flags"])


def test_audit_is_paced_and_bounded(stack: Stack, officer, case, items) -> None:
    slept: list[float] = []
    settings = stack.settings.model_copy(update={"fixity_bytes_per_second": 100_000, "fixity_max_objects_per_run": 2})
    run = fixity.run_audit(db=stack.services.db, store=stack.services.store, settings=settings,
                           item_ids=[i["id"] for i in items], sleep=slept.append)
    assert len(run.items) == 2  # the cap on objects per run
    # ~100 kB read at 100 kB/s: the pacer asked to wait about a second in total.
    assert 0.5 < sum(slept) < 1.5, slept


def test_beat_runs_the_audit_task(stack: Stack) -> None:
    from workers.celery import make_celery

    schedule = make_celery(stack.settings).conf.beat_schedule
    assert schedule["evidence-fixity-audit"]["task"] == work.FIXITY_AUDIT
    assert schedule["evidence-fixity-audit"]["schedule"] == stack.settings.fixity_interval_seconds
