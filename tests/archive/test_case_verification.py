"""Case verification says ``passed`` only when it truly is, and never crashes on tampering.

* On the shared stack: a case whose item is still being processed, or that has a gap
  not accepted, is ``incomplete`` (API receipt and ``evidence verify-case`` exit 3) with a
  machine-readable pending list; the same case is ``passed`` once complete, its item
  proven in a checkpoint the verification sealed itself when none covered it.
* On a database of its own (same kind as the stack's): deleting, editing, reordering or
  adding a checkpoint row, and deleting a ledger entry, are each named by ``evidence
  ledger verify`` and ``evidence verify-case`` (exit 1, no traceback); so is deleting or
  altering the vault's copy of a checkpoint or of a closed case's archive record (by
  ``verify-case`` and ``verify-item`` too, and by the receipt's own check).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from archive.models import Checkpoint, LedgerEntry
from tests.conftest import process, receive_directly, run_cli, settings_from_env, tamper_stored, unprotect_ledger

# Slow: cases taken through the worker's pipeline, sealed checkpoints and tampering.
pytestmark = pytest.mark.slow

FINISHED = ("passed", "incomplete", "failed")


def _verify_through_api(stack, token: str, case_id: str, timeout: float = 120) -> dict:
    with stack.client(token) as c:
        r = c.post(f"/api/v1/cases/{case_id}/verify")
        assert r.status_code == 202, r.text
        assert r.json()["pending"] == []
        rid = r.json()["id"]
        deadline = time.monotonic() + timeout
        while True:
            mine = next(x for x in c.get(f"/api/v1/cases/{case_id}/verifications").json() if x["id"] == rid)
            if mine["status"] in FINISHED:
                return mine
            assert time.monotonic() < deadline, mine
            time.sleep(0.3)


def _settled(stack, token: str, case_id: str, timeout: float = 120) -> dict:
    """The continuity report once nothing is processing or queued for analysis."""
    deadline = time.monotonic() + timeout
    with stack.client(token) as c:
        while True:
            report = c.get(f"/api/v1/cases/{case_id}/continuity").json()
            if not report["pending"]:
                return report
            assert time.monotonic() < deadline, report
            time.sleep(0.3)


def _reasons(pending: list[dict]) -> list[tuple[str, str, str]]:
    return sorted((p["what"], p["subject"], p["reason"]) for p in pending)


def test_case_is_incomplete_until_processed_anchored_and_continuous(stack, officer, case):
    reviewer = stack.user(role="reviewer", unit="unit-a")
    # Received, but its processing (and so its seal) has not run: nothing is wrong, nothing is done.
    item_id = receive_directly(stack, case, os.urandom(2500))
    r = stack.cli("verify-case", case["case_number"])
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and f"PENDING processing item {item_id}" in r.stderr, r.stderr
    receipt = _verify_through_api(stack, reviewer, case["id"])
    assert receipt["status"] == "incomplete", receipt
    assert _reasons(receipt["pending"]) == [("item", item_id, "processing")], receipt["pending"]
    assert not [c for c in receipt["checks"] if c["outcome"] == "failed"], receipt["checks"]

    # Processed and sealed by the worker; the verification anchors it in a checkpoint itself.
    process(stack, item_id)
    _settled(stack, officer, case["id"])
    stack.wait_item(officer, item_id, lambda i: i["seal_status"] in ("sealed", "failed"))
    receipt = _verify_through_api(stack, reviewer, case["id"])
    assert receipt["status"] == "passed" and receipt["pending"] == [], receipt
    (item_check,) = [c for c in receipt["checks"] if c["what"] == "item"]
    assert item_check["outcome"] == "ok" and "in checkpoint" in item_check["detail"], item_check
    with stack.services.db.snapshot() as s:
        received = s.execute(select(LedgerEntry.seq).where(
            LedgerEntry.item_id == item_id, LedgerEntry.action == "evidence_received")).scalar_one()
        covering = s.execute(select(Checkpoint.id).where(Checkpoint.tree_size >= received)).first()
        assert covering is not None
        recorded = s.execute(select(LedgerEntry.details).where(LedgerEntry.action == "checkpoint_sealed")).scalars()
        assert any(f'"checkpoint":{covering[0]},' in d for d in recorded)

    # A seizure its camera did not record: an unexplained gap keeps the case incomplete.
    cam = f"CAM-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": start.isoformat(),
                         "end": (start + timedelta(minutes=5)).isoformat(), "devices": [cam]})
        assert r.status_code == 201, r.text
    (gap,) = _settled(stack, officer, case["id"])["gaps"]
    r = stack.cli("verify-case", case["case_number"])
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"PENDING gap_unexplained gap {gap['id']}" in r.stderr, r.stderr
    with stack.client(officer) as c:
        assert c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "camera not issued"}).status_code == 200
    receipt = _verify_through_api(stack, reviewer, case["id"])
    assert receipt["status"] == "incomplete", receipt
    assert _reasons(receipt["pending"]) == [("gap", gap["id"], "gap_awaiting_review")], receipt["pending"]
    continuity = next(c for c in receipt["checks"] if c["what"] == "continuity")
    assert continuity["outcome"] == "pending", continuity

    with stack.client(reviewer) as c:
        assert c.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True}).status_code == 200
    r = stack.cli("verify-case", case["case_number"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified" in r.stdout
    with stack.services.db.snapshot() as s:
        outcomes = [d for d in s.execute(select(LedgerEntry.details).where(
            LedgerEntry.case_id == case["id"], LedgerEntry.action == "case_verified").order_by(LedgerEntry.seq)
        ).scalars()]
    assert ['"outcome":"incomplete"' in d for d in outcomes] == [True, True, False, True, True, False], outcomes


def _sealed_case(own_ledger, *, name: str, title: str, sizes: list[int],  # type: ignore[no-untyped-def]
                 recordings: list[tuple[datetime, float]] | None = None):
    """On a database of its own: a case whose items (random bytes of ``sizes``) are received,
    hashed, sealed and recorded as processed (the worker's pipeline is not running here);
    (env, database, sealer, store, case number, items). With ``recordings`` (start, seconds),
    the items are body-camera clips of one device, probed as that long, and the case's
    continuity is analysed."""
    from archive.cases import service as cases
    from archive.evidence import fixity, receiving
    from archive.identity.users import add_user
    from archive.models import EvidenceItem, EvidenceKind
    from archive.seals.items import seal_item
    from archive.seals.sealer import Sealer
    from archive.storage import open_store

    env, database = own_ledger
    settings = settings_from_env(env)
    sealer, store = Sealer(settings), open_store(settings)
    with database.session() as s:
        user, _ = add_user(s, name=name, unit="unit-a", role="officer")
        number = f"{name.upper()}-{uuid.uuid4().hex[:8]}"
        case_id = cases.create_case(s, store=store, user=user, case_number=number, title=title).id
        user_id = user.id
    items = []
    for i, size in enumerate(sizes):
        start, seconds = recordings[i] if recordings else (None, None)
        item = receiving.receive_original(
            db=database, store=store, user_id=user_id, retention_days=1, chunks=[os.urandom(size)],
            incoming=receiving.IncomingEvidence(
                case_id=case_id, kind=EvidenceKind.bodycam_video if recordings else EvidenceKind.other,
                filename=f"n{i}.bin", device_id="CAM-9" if recordings else None, recorded_start=start),
        )
        if seconds is not None:
            with database.session() as s:
                s.get(EvidenceItem, item.id).media_facts = {
                    "container": "mov,mp4,m4a,3gp,3g2,mj2", "streams": [{"codec_type": "video"}],
                    "duration_seconds": seconds}
        fixity.compute_sm3(db=database, store=store, item_id=item.id)
        seal_item(db=database, store=store, sealer=sealer, item_id=item.id)
        items.append(item)
    with database.session() as s:
        for item in items:
            s.get(EvidenceItem, item.id).processing = {"continuity": {"state": "done"}}
    if recordings:
        from archive.continuity import runs
        with database.session() as s:
            runs.request_analysis(s, case_id=case_id)
        with database.session() as s:
            runs.analyse_case(s, case_id=case_id, tolerance_seconds=1.0)
    return env, database, sealer, store, number, items


@pytest.fixture
def verified_case(own_ledger):
    """A database of its own with a case whose one item is sealed and processed, and two
    checkpoints (the first covers the item's receipt); ``verify-case`` passes on it."""
    from archive.custody import ledger
    from archive.custody.checkpoints import create_checkpoint

    env, database, sealer, store, number, _items = _sealed_case(own_ledger, name="own", title="Tampering",
                                                                sizes=[1500])
    with database.session() as s:
        assert create_checkpoint(s, sealer, store=store) is not None
        ledger.append(s, actor="test", action="note", details={"after": "first checkpoint"})
        assert create_checkpoint(s, sealer, store=store) is not None
    r = run_cli(env, "verify-case", number)
    assert r.returncode == 0, r.stdout + r.stderr
    return env, database, number, sealer


def _delete_first_checkpoint(database, sealer):
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM checkpoints WHERE id = 1"))
    return "checkpoint 1 (tree size"


def _delete_latest_checkpoint(database, sealer):
    with database.engine.begin() as conn:
        latest = conn.execute(text("SELECT max(id) FROM checkpoints")).scalar_one()
        conn.execute(text("DELETE FROM checkpoints WHERE id = :i"), {"i": latest})
    return f"checkpoint {latest} (tree size"


def _reseal_first_checkpoint(database, sealer):
    """An insider with the seal key re-signs checkpoint 1 with another time: every seal
    verifies and the row agrees with its statement; only the ledger's record tells."""
    import json

    from archive.seals.manifests import canonical_bytes

    with database.engine.begin() as conn:
        statement = json.loads(conn.execute(text("SELECT statement FROM checkpoints WHERE id = 1")).scalar_one())
        statement["time"] = "2020-01-01T00:00:00.000000Z"
        data = canonical_bytes(statement)
        bundle = sealer.seal(data)
        conn.execute(text("UPDATE checkpoints SET statement = :s, cades = :c, sm2 = :m WHERE id = 1"),
                     {"s": data.decode(), "c": bundle.cades, "m": json.dumps(bundle.sm2)})
    return "differs from its record in ledger entry"


def _edit_latest_root(database, sealer):
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET root_hash = :r WHERE id = (SELECT max(id) FROM checkpoints)"),
                     {"r": "ab" * 32})
    return "checkpoint row altered"


def _swap_checkpoints(database, sealer):
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET id = 1000 WHERE id = 1"))
        conn.execute(text("UPDATE checkpoints SET id = 1 WHERE id = 2"))
        conn.execute(text("UPDATE checkpoints SET id = 2 WHERE id = 1000"))
    return "checkpoint rows reordered"


def _extra_checkpoint(database, sealer):
    with database.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO checkpoints (id, tree_size, root_hash, created_at, statement, cades, sm2, timestamp_time) "
            "SELECT 77, tree_size + 1, root_hash, created_at, statement, cades, sm2, timestamp_time "
            "FROM checkpoints WHERE id = 1"))
    return "checkpoint 77 (tree size"


def _delete_middle_entry(database, sealer):
    unprotect_ledger(database)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE seq = 3"))
    return "ledger entry 3 is missing"


def _delete_last_entry(database, sealer):
    unprotect_ledger(database)
    with database.engine.begin() as conn:
        last = conn.execute(text("SELECT max(seq) FROM ledger_entries")).scalar_one()
        conn.execute(text("DELETE FROM ledger_entries WHERE seq = :s"), {"s": last})
    return f"entry {last}"


@pytest.mark.parametrize(
    "tamper",
    [_delete_first_checkpoint, _delete_latest_checkpoint, _reseal_first_checkpoint, _edit_latest_root,
     _swap_checkpoints, _extra_checkpoint, _delete_middle_entry, _delete_last_entry],
    ids=["delete-checkpoint", "delete-latest-checkpoint", "resealed-checkpoint", "edit-root", "reorder-checkpoints",
         "extra-checkpoint", "delete-entry", "delete-last-entry"],
)
def test_tampering_is_named_by_ledger_verify_and_verify_case(verified_case, tamper):
    env, database, number, sealer = verified_case
    named = tamper(database, sealer)
    for command in (("ledger", "verify"), ("verify-case", number)):
        r = run_cli(env, *command)
        assert r.returncode == 1, (command, r.stdout + r.stderr)
        assert "Traceback" not in r.stderr, (command, r.stderr)
        assert named in r.stderr, (command, r.stderr)


def test_a_large_case_is_checked_in_processes_and_names_its_one_altered_item(own_ledger):
    """A case of more items than :data:`receipts.PROCESS_POOL_FROM` is checked by a pool of
    processes (each with its own connections): it passes whole, and with one byte of one
    original changed in the store, exactly that item fails, by id, and the others still pass.
    Every item's re-hash and check are custody entries, in the items' order, whichever
    process checked it, each with its outcome."""
    from archive.cases import receipts
    from archive.custody.checkpoints import create_checkpoint

    count = 20
    assert receipts.PROCESS_POOL_FROM <= count
    env, database, sealer, store, number, items = _sealed_case(own_ledger, name="many", title="Many items",
                                                               sizes=[2000 + i for i in range(count)])
    with database.session() as s:
        assert create_checkpoint(s, sealer, store=store) is not None

    wide = dict(env, COLUMNS="400")  # one table row per line
    r = run_cli(wide, "verify-case", number)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if line.lstrip("│ ").startswith("item")]
    assert len(rows) == count and all(" ok " in row for row in rows), r.stdout
    assert all(any(item.id in row for row in rows) for item in items)

    def recorded_by_last_run() -> list[tuple[str, str, str]]:
        with database.snapshot() as s:
            start = s.execute(select(func.max(LedgerEntry.seq))
                              .where(LedgerEntry.action == "verification_requested")).scalar_one()
            found = s.execute(select(LedgerEntry).where(
                LedgerEntry.seq > start, LedgerEntry.action.in_(("fixity_checked", "item_verified")))
                .order_by(LedgerEntry.seq)).scalars()
            return [(e.item_id, e.action, json.loads(e.details)["outcome"]) for e in found]

    def expected(failing: str | None = None) -> list[tuple[str, str, str]]:
        return [(item.id, action, "failed" if item.id == failing else "ok")
                for item in items for action in ("fixity_checked", "item_verified")]

    assert recorded_by_last_run() == expected()

    altered = items[13]
    if not hasattr(store, "client"):  # the embedded default's filesystem store
        path = settings_from_env(env).resolved_storage_dir / altered.storage_key
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
    else:  # on S3 the locked version stays: the insider can only put a new version on top
        import io

        data = bytearray(b"".join(store.read(altered.storage_key)))
        data[len(data) // 2] ^= 0x40
        store.client.put_object(store.bucket, altered.storage_key, io.BytesIO(bytes(data)), len(data))
    r = run_cli(wide, "verify-case", number)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [line for line in r.stderr.splitlines() if line.startswith("FAILED item")]
    assert len(failed) == 1 and altered.id in failed[0], r.stderr
    assert recorded_by_last_run() == expected(failing=altered.id)


OK_ASPECTS = {a: {"ok": True, "comment": ""} for a in ("subject", "facts", "basis", "discretion", "procedure")}


@pytest.fixture
def closed_case(own_ledger):
    """On a database of its own: a case with one sealed item, taken through its reviews and
    closed (its archive record sealed into its vault); (env, store, number, item id, vault).
    ``ledger verify``, ``verify-case`` and ``verify-item`` pass on it."""
    from archive.cases import closing, reviews, stages
    from archive.identity.users import add_user
    from archive.models import Case, User

    env, database, sealer, store, number, (item,) = _sealed_case(own_ledger, name="closer", title="Closed",
                                                                 sizes=[1800])
    with database.session() as s:
        reviewer_id = add_user(s, name="closing-reviewer", unit="unit-a", role="reviewer")[0].id
        officer_id = s.execute(select(User.id).where(User.name == "closer")).scalar_one()
        vault = s.get(Case, item.case_id).vault.name

    def review(checkpoint: str) -> None:
        reviews.record_review(db=database, sealer=sealer, user_id=reviewer_id, case_id=item.case_id,
                              body=reviews.ReviewInput(checkpoint=checkpoint, aspects=OK_ASPECTS,
                                                       decision="approve", opinion="in order"))

    def move(*to: str) -> None:
        for stage in to:
            with database.session() as s:
                stages.move(s, user=s.get(User, officer_id), case_id=item.case_id, to=stage, reason="next")

    review("filing")
    move("investigation", "notice", "legal_review")
    review("approval")
    move("decision", "service")
    review("closing")
    closing.close_case(db=database, store=store, sealer=sealer, user_id=officer_id, case_id=item.case_id)
    for command in (("ledger", "verify"), ("verify-case", number), ("verify-item", item.id)):
        r = run_cli(env, *command)
        assert r.returncode == 0, (command, r.stdout + r.stderr)
    return env, store, number, item.id, vault


@pytest.mark.parametrize("target, how", [
    ("checkpoints/", "delete"), ("checkpoints/", "flip"),
    ("case-archive/", "delete"), ("case-archive/", "flip"),
], ids=["checkpoint-deleted", "checkpoint-altered", "archive-record-deleted", "archive-seal-altered"])
def test_vault_copies_deleted_or_altered_are_named(closed_case, target, how):
    """The vault's copies of a checkpoint and of the case archive record must equal their
    database rows: ``verify-case`` and ``verify-item`` (and, for checkpoints, ``ledger verify``)
    name the object missing or altered, exit 1; the receipt lists it under its own check."""
    env, store, number, item_id, vault = closed_case
    keys = sorted(o.key for o in store.list(f"{vault}/{target}"))
    if target == "checkpoints/":  # the statement of the checkpoint sealed for the case's first entries
        key, check = next(k for k in keys if k.endswith(".json") and not k.endswith(".sm2.json")), "checkpoint_copies"
    else:  # the record's CAdES seal
        key, check = next(k for k in keys if k.endswith(".p7s")), "archive_copies"
    tamper_stored(store, key, delete=how == "delete")
    problem = "missing from the store" if how == "delete" else "altered: the store holds"

    commands = [("verify-case", number), ("verify-item", item_id)]
    if target == "checkpoints/":
        commands.append(("ledger", "verify"))
    for command in commands:
        r = run_cli(dict(env, COLUMNS="400"), *command)
        assert r.returncode == 1, (command, r.stdout + r.stderr)
        assert "Traceback" not in r.stderr, (command, r.stderr)
        assert key in r.stderr and problem in r.stderr, (command, r.stderr)
    r = run_cli(dict(env, COLUMNS="400"), "verify-case", number)
    assert f"FAILED {check} {key}: {problem}" in r.stderr, r.stderr
    other = "archive_copies" if check == "checkpoint_copies" else "checkpoint_copies"
    assert any(line.lstrip("│ ").startswith(other) and " ok " in line for line in r.stdout.splitlines()), r.stdout


def _failed_verification(env, number: str) -> str:  # type: ignore[no-untyped-def]
    r = run_cli(dict(env, COLUMNS="400"), "verify-case", number)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r.stdout + r.stderr


def test_an_item_row_deleted_from_the_database_is_named_by_its_receipt_entry(verified_case):
    """Each item's check starts from the case's rows: an item whose row (and derived rows) an
    insider deleted was simply not checked, and the case verified. Its ``evidence_received``
    entry still names it."""
    env, database, number, _sealer = verified_case
    with database.engine.begin() as conn:
        item_id, sha256 = conn.execute(text("SELECT id, sha256 FROM evidence_items")).one()
        conn.execute(text("DELETE FROM derived_objects WHERE item_id = :i"), {"i": item_id})
        conn.execute(text("DELETE FROM evidence_items WHERE id = :i"), {"i": item_id})
    shown = _failed_verification(env, number)
    assert f"item {item_id} received at custody entry" in shown and f"(sha256 {sha256}) is not among the case's items" in shown


def test_a_deleted_or_altered_archive_record_row_is_named_by_the_closing_entry(closed_case):
    env, store, number, item_id, vault = closed_case
    database = _database(env)
    with database.engine.begin() as conn:
        archive_id, sha256 = conn.execute(text("SELECT id, sha256 FROM case_archives")).one()
        conn.execute(text("UPDATE case_archives SET sha256 = :s"), {"s": "ab" * 32})
    assert f"archive record {archive_id} has sha256 {'ab' * 32}; custody entry" in _failed_verification(env, number)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM case_archives"))
    shown = _failed_verification(env, number)
    assert f"archive record {archive_id} sealed at custody entry" in shown and f"(sha256 {sha256}) is not in the database" in shown
    database.dispose()


def _database(env):  # type: ignore[no-untyped-def]
    from archive.db import Database

    return Database(settings_from_env(env))


T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("tamper, named", [
    ("DELETE FROM gaps", "which the recordings give, is not in the case's record of gaps"),
    ("UPDATE gaps SET current = :no", "which the recordings give, is not in the case's record of gaps"),
    ("UPDATE gaps SET duration_seconds = 1.2, start = :later", "(1.2 s) on CAM-9; the recordings give"),
    ("INSERT INTO gaps SELECT 'g-extra', case_id, 'k-extra', level, device, item_id, previous_item_id, action_id, start, "
     "\"end\", duration_seconds, cause, current, status, explanation, explained_by, explained_at, review_comment, "
     "reviewed_by, reviewed_at, found_at FROM gaps", "is recorded, but the recordings give no such gap"),
], ids=["deleted", "no-longer-current", "shortened", "added"])
def test_a_gap_deleted_shortened_or_added_in_the_database_is_found_again_from_the_recordings(own_ledger, tamper, named):
    """A gap's row is what reviewers account for: deleting it, marking it no longer current or
    shortening it made the case look continuous. Verification analyses the recordings again
    and names every gap where the record and the recordings disagree."""
    env, database, _sealer, _store, number, _items = _sealed_case(
        own_ledger, name="gapped", title="Gaps", sizes=[700, 900],
        recordings=[(T0, 60.0), (T0 + timedelta(seconds=90), 60.0)])
    r = run_cli(env, "verify-case", number)
    assert r.returncode == 3, r.stdout + r.stderr  # one unresolved 30 s gap: incomplete, nothing failed
    with database.engine.begin() as conn:
        conn.execute(text(tamper), {"no": False, "later": T0 + timedelta(seconds=85)})
    assert named in _failed_verification(env, number)


def test_an_altered_playback_copy_fails_the_items_verification(stack, officer, case, tmp_path):
    """A reviewer plays the proxy at a gap: verification re-hashes every derived object, not
    only the manifest and seals, and names the one altered in the store."""
    from archive.models import DerivedObject
    from tests.archive.test_exports import tiny_clip

    if stack.name != "embedded":
        pytest.skip("S3: the recorded version is locked; an insider's newer version is not what is read")
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", content=tiny_clip(tmp_path / "c.mp4"),
                      params={"kind": "bodycam_video", "filename": "c.mp4"}).json()
    item = stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed"
                           and any(d["role"] == "proxy" for d in i["derived"]))
    r = stack.cli("verify-item", item["id"])
    assert r.returncode == 0, r.stdout + r.stderr
    with stack.services.db.snapshot() as s:
        key = s.execute(select(DerivedObject.storage_key).where(
            DerivedObject.item_id == item["id"], DerivedObject.role == "proxy")).scalar_one()
    tamper_stored(stack.services.store, key)
    r = stack.cli("verify-item", item["id"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"proxy object {key} altered: sha256" in r.stderr, r.stderr


def test_a_sealed_checkpoint_copy_no_row_names_is_a_warning_or_a_failure(verified_case):
    """A checkpoint is written to the vaults before its row is recorded: a run that did not
    finish leaves a copy no row names (a warning: verification still passes). A copy sealing
    entries the ledger no longer holds cannot be one: the newest checkpoint was removed with
    the entries after it, and verification fails naming the copy."""
    from archive.custody import checkpoints, ledger
    from archive.storage import open_store

    env, database, number, sealer = verified_case
    store = open_store(settings_from_env(env))
    with database.session() as s:
        ledger.append(s, actor="test", action="note", details={"after": "second checkpoint"})
    with database.read() as s:
        plan = checkpoints._plan(s, None)
    plan = checkpoints._Plan(last=plan.last, statement=plan.statement, tree_size=plan.tree_size,
                             root_hash=plan.root_hash, vaults=[v for v in plan.vaults] or _vaults(database))
    orphan = checkpoints._sealed(plan, sealer, store)  # sealed and written, never recorded: a crash
    r = run_cli(dict(env, COLUMNS="400"), "verify-case", number)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"tree size {orphan.tree_size}" in r.stdout and "no checkpoint row names" in r.stdout, r.stdout

    unprotect_ledger(database)
    with database.engine.begin() as conn:  # the ledger cut back below what the copy seals
        conn.execute(text("DELETE FROM ledger_entries WHERE seq >= :n"), {"n": orphan.tree_size})
        conn.execute(text("UPDATE ledger_lock SET size = :n"), {"n": orphan.tree_size - 1})
    from archive.cases.vault_copies import unrecorded_checkpoint_copies
    from archive.models import Case

    with database.read() as s:
        case_id = s.execute(select(Case.id).where(Case.case_number == number)).scalar_one()
        (copy,) = unrecorded_checkpoint_copies(s, store, case_id=case_id)
    assert copy.tree_size == orphan.tree_size and copy.problem == (
        f"seals {orphan.tree_size} entries, and the ledger holds {orphan.tree_size - 1}: entries sealed then were removed")
    # The lock row no longer fits the nodes left behind: the command says so, it does not crash.
    r = run_cli(dict(env, COLUMNS="400"), "verify-case", number)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "the ledger's lock row" in r.stderr and "run evidence ledger verify" in r.stderr, r.stderr


def _vaults(database) -> list[str]:  # type: ignore[no-untyped-def]
    from archive.models import Vault

    with database.read() as s:
        return list(s.execute(select(Vault.name)).scalars())


def test_gaps_kept_by_another_version_of_the_analysis_are_not_called_tampered(own_ledger):
    """After an upgrade that changes what the analysis gives (a new kind of gap, a cause
    worded anew), a case last analysed by the older version is not compared with the newer's
    findings: that would call the upgrade tampering. Its next analysis makes it comparable."""
    env, database, _sealer, _store, number, _items = _sealed_case(
        own_ledger, name="versioned", title="Gaps", sizes=[700, 900],
        recordings=[(T0, 60.0), (T0 + timedelta(seconds=90), 60.0)])
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE gaps SET cause = 'worded by an older version'"))
        summary = conn.execute(text("SELECT summary FROM continuity_state")).scalar_one()
        summary = json.loads(summary) if isinstance(summary, str) else summary  # PostgreSQL gives JSON parsed
        conn.execute(text("UPDATE continuity_state SET summary = :s"),
                     {"s": json.dumps({**summary, "analysis_version": 1})})
    r = run_cli(env, "verify-case", number)
    assert r.returncode == 3, r.stdout + r.stderr  # incomplete (the gap is unexplained), not failed


def test_a_sealed_archive_record_no_closing_recorded_is_a_warning(closed_case):
    """A close writes its sealed record into the vault just before it records it: one
    interrupted between the two leaves a record no row names. Verification still passes the
    case (it was closed by the record its row names) and names the other one."""
    from archive.cases.closing import archive_copies
    from archive.cases.models import CaseArchive
    from archive.seals.sealer import SealBundle
    from archive.storage.streams import put_copies

    env, store, number, _item_id, vault = closed_case
    database = _database(env)
    with database.read() as s:
        row = s.execute(select(CaseArchive)).scalar_one()
        interrupted = archive_copies(vault, "interrupted-close", bytes(row.record),
                                     SealBundle(cades=bytes(row.cades), sm2=row.sm2))
    database.dispose()
    put_copies(store, interrupted, until=datetime.now(timezone.utc) + timedelta(days=1))
    r = run_cli(dict(env, COLUMNS="400"), "verify-case", number)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(x for x in r.stdout.splitlines() if f"{vault}/case-archive/interrupted-close/record.json" in x)
    assert "warning" in line and "no closing recorded" in line, r.stdout
    assert f"case-archive/{row.id}/record.json" not in r.stdout  # the record that closed it is not named
