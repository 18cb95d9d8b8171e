"""Review of the worker side: defects found and the tests that pin their fixes."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from archive.seals.items import _make_seal_objects, seal_item  # noqa: SLF001
from archive.seals.manifests import build_manifest
from archive.models import EvidenceItem, User
from archive.identity.users import add_user
from tests.conftest import process, receive_directly, tamper_stored


def _receive(stack, case: dict, data: bytes) -> str:
    return receive_directly(stack, case, data)


def test_seal_after_interrupted_seal_of_an_older_manifest(stack, case):
    """A seal run interrupted after writing its objects, then a step that changes the row
    (a retried probe), must not make the item unsealable forever."""
    db, store = stack.services.db, stack.services.store
    sealer = stack.services.sealer
    item_id = _receive(stack, case, os.urandom(3000))
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        old_manifest = build_manifest(session, item)
        vault, until = item.vault.name, item.retention_until
        snapshot = {"sha256": item.sha256, "size": item.size, "key": item.storage_key,
                    "version": item.storage_version}
    # The interrupted run: objects written and locked, no rows (the worker died).
    _make_seal_objects(  # noqa: SLF001
        store=store, sealer=sealer, item_id=item_id, vault=vault, manifest=old_manifest, until=until,
        snapshot=snapshot, wants_pdf=False,
    )
    with db.session() as session:
        session.get(EvidenceItem, item_id).media_facts = {"sniffed_media_type": "application/octet-stream"}
    record = seal_item(db=db, store=store, sealer=sealer, item_id=item_id)
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        assert item.seal_status == "sealed"
        manifest = next(d for d in item.derived if d.role == "manifest")
        stored = b"".join(store.read(manifest.storage_key, version_id=manifest.storage_version))
        assert stored == build_manifest(session, item) != old_manifest
        assert record.manifest_sha256 == manifest.sha256
    assert seal_item(db=db, store=store, sealer=sealer, item_id=item_id).manifest_sha256 == record.manifest_sha256


def test_local_store_translates_os_errors(tmp_path):
    """An unreadable object (here a directory where a file should be) is our StorageError."""
    from archive.errors import StorageError
    from archive.storage.local import LocalStore

    store = LocalStore(tmp_path / "objects")
    (tmp_path / "objects" / "v" / "originals" / "x").mkdir(parents=True)
    with pytest.raises(StorageError) as info:
        b"".join(store.read("v/originals/x"))
    assert not isinstance(info.value.__cause__, StorageError)


@pytest.mark.slow  # waits for the worker to run every step
def test_unreadable_original_leaves_no_step_pending(stack, case):
    """A crash while hashing the original must still close every step with a reason."""
    if stack.name != "embedded":
        pytest.skip("needs a local object file to break")
    item_id = receive_directly(stack, case, os.urandom(2000), sm3=False)
    with stack.services.db.session() as session:
        key = session.get(EvidenceItem, item_id).storage_key
    # An insider (or a disk fault) leaves something unreadable where the original was.
    path = stack.services.store.root / key
    path.unlink()
    path.mkdir()
    process(stack, item_id)
    token = stack.user(role="officer", unit="unit-a")
    done = stack.wait_item(
        token, item_id, lambda i: (i.get("processing") or {}).get("seal", {}).get("state") in ("done", "failed"),
        timeout=60,
    )
    states = done["processing"]
    assert not [n for n, s in states.items() if s["state"] in ("queued", "running")], states
    assert states["sm3"]["state"] == "failed" and states["sm3"]["reason"], states
    assert states["seal"]["state"] == "failed" and states["seal"]["reason"], states


@pytest.mark.slow  # races the worker for seconds
def test_device_clock_change_during_an_analysis_does_not_deadlock(stack, case):
    """CI found a deadlock on PostgreSQL: a continuity analysis locked the case row and then
    appended to the custody ledger, while a device-clock change appended first (holding the
    ledger lock) and then locked the case to request its analysis. Everything now takes
    case rows before the ledger lock."""
    import threading

    from archive.custody import ledger
    from archive.continuity import devices, runs

    db = stack.services.db
    cam = f"CAM-{uuid.uuid4().hex[:8]}"
    with db.session() as session:
        user, _ = add_user(session, name=f"officer-{uuid.uuid4().hex[:8]}", unit="unit-a", role="officer")
        devices.create_action(session, user=user, case_id=case["id"], kind="inspection",
                               start=datetime(2026, 3, 1, 9, tzinfo=timezone.utc),
                               end=datetime(2026, 3, 1, 10, tzinfo=timezone.utc), devices=[cam])
        user_id = user.id
    holding = threading.Event()
    outcome: dict[str, object] = {}

    def analysis_like() -> None:  # the worker's order: case row, then the ledger
        try:
            with db.session() as session:
                runs.request_analysis(session, case_id=case["id"])
                holding.set()
                time.sleep(1.5)  # the clock change starts meanwhile
                ledger.append(session, actor="test", action="note", case_id=case["id"])
            outcome["analysis"] = "committed"
        except Exception as exc:  # noqa: BLE001 - the assertion shows whatever it was
            outcome["analysis"] = exc
        finally:
            holding.set()

    thread = threading.Thread(target=analysis_like)
    thread.start()
    assert holding.wait(30)
    with db.session() as session:
        user = session.get(User, user_id)
        devices.set_device_clock(session, user=user, device_id=cam, offset_seconds=4)
    thread.join(timeout=60)
    assert outcome.get("analysis") == "committed", outcome


def _wait_for_lock_waiters(db, count: int) -> None:
    """Return once ``count`` transactions wait for a row lock (PostgreSQL). SQLite runs
    writing transactions one at a time (BEGIN IMMEDIATE), so there a short pause does."""
    if db.engine.dialect.name != "postgresql":
        time.sleep(0.5)
        return
    deadline = time.monotonic() + 30
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    while True:
        with db.engine.connect() as conn:  # a new snapshot of pg_stat_activity each time
            if conn.execute(query).scalar_one() >= count:
                return
        assert time.monotonic() < deadline, f"fewer than {count} transactions ever waited for a lock"
        time.sleep(0.05)


@pytest.mark.slow  # races the worker for seconds
def test_fixity_alarm_during_the_continuity_hand_off_does_not_deadlock(stack, case):
    """A failing fixity audit flags the case and the item; the pipeline's last step marks
    the item processed and requests the case's analysis. The audit's flush updated the
    case row before the item row while the step locked the item before the case, so on
    PostgreSQL the two deadlocked whenever they met behind a running analysis. Both now
    take the case row before the item row."""
    import threading

    from archive.evidence import fixity
    from archive.custody import ledger
    from archive.models import Case, ItemStatus
    from archive.continuity import runs
    from ingest import pipeline
    from ingest.workspace import Workspace

    db, store, settings = stack.services.db, stack.services.store, stack.services.settings
    item_id = _receive(stack, case, os.urandom(5000))
    with db.session() as session:
        key = session.get(EvidenceItem, item_id).storage_key
    tamper_stored(store, key)

    outcome: dict[str, object] = {}
    holding, release = threading.Event(), threading.Event()

    def analysis() -> None:  # a continuity analysis of the case, holding its row
        try:
            with db.session() as session:
                runs.analyse_case(session, case_id=case["id"], tolerance_seconds=settings.gap_tolerance_seconds)
                holding.set()
                assert release.wait(30)
            outcome["analysis"] = "committed"
        except Exception as exc:  # noqa: BLE001 - the assertion shows whatever it was
            outcome["analysis"] = exc
        finally:
            holding.set()

    def audit() -> None:
        try:
            outcome["audit"] = fixity.run_audit(db=db, store=store, settings=settings, item_ids=[item_id])
        except Exception as exc:  # noqa: BLE001
            outcome["audit"] = exc

    def hand_off() -> None:
        try:
            ws = Workspace(db=db, store=store, settings=settings, item_id=item_id)
            outcome["hand_off"] = pipeline.continuity_step(ws, enqueue=stack.services.enqueue)
        except Exception as exc:  # noqa: BLE001
            outcome["hand_off"] = exc

    threads = [threading.Thread(target=analysis)]
    threads[0].start()
    assert holding.wait(30)
    threads.append(threading.Thread(target=audit))
    threads[-1].start()
    _wait_for_lock_waiters(db, 1)  # the audit waits for the case row
    threads.append(threading.Thread(target=hand_off))
    threads[-1].start()
    _wait_for_lock_waiters(db, 2)  # and the hand-off too (holding the item row, before the fix)
    release.set()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert outcome["analysis"] == "committed", outcome
    assert outcome["hand_off"] is None, outcome
    audit_run = outcome["audit"]
    assert isinstance(audit_run, fixity.AuditRun), outcome
    assert [a.item_id for a in audit_run.failures] == [item_id]
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        assert item.status == ItemStatus.processed
        assert "fixity_failed" in item.flags
        assert "fixity_failed" in session.get(Case, case["id"]).flags
        assert ledger.count_actions(session, item_id=item_id, action="fixity_checked") == 1
