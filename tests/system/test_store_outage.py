"""The S3 server crashes while the archive serves (its own SeaweedFS, killed with SIGKILL and
started again on the same ports and data): every answer says why, the custody ledger records
only what happened, and the archive recovers by itself once the server is back."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from tests.archive.test_exports import _built_export, _downloads, _one_document_case, upload, wait_case_sealed
from tests.conftest import run_cli, running_stack
from tests.servers import S3Server, create_pg_database, drop_pg_database, start_s3


@pytest.fixture
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server of this test's own (the session's is shared: never stopped)."""
    server = start_s3(tmp_path_factory.mktemp("own-seaweedfs"))
    yield server
    server.stop()


def _people(stack) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An officer, two reviewers (one asks for an export, the other approves it) and a judge, as tokens."""
    judge = f"judge-{uuid.uuid4().hex[:6]}"
    return {"officer": stack.user(role="officer", unit="unit-x"),
            "requester": stack.user(role="reviewer", unit="unit-x"),
            "approver": stack.user(role="reviewer", unit="unit-x"),
            "judge": stack.user(role="court", unit="court-1", name=judge), "judge_name": judge}


def test_an_export_the_store_cannot_serve_is_503_and_records_no_download(request, tmp_path, s3_server) -> None:
    """A court's download while the store is down answers 503 ``store_unavailable``; its
    ``export_downloaded`` custody entry used to be written before the ZIP was opened, so the
    ledger said the court received an export it never got."""
    database_url = create_pg_database()
    try:
        with running_stack(request, "services", tmp_path, database_url=database_url) as stack:
            people = _people(stack)
            case = _one_document_case(stack, people)
            export = _built_export(stack, people, case["id"])
            assert export["status"] == "ready", export

            s3_server.kill()
            with stack.client(people["judge"]) as judge:
                r = judge.get(f"/api/v1/exports/{export['id']}/download")
                assert (r.status_code, r.json()["error"]["code"]) == (503, "store_unavailable"), r.text
                assert _downloads(stack, export["id"]) == 0

                s3_server.start_again()
                deadline = time.monotonic() + 30
                while (r := judge.get(f"/api/v1/exports/{export['id']}/download")).status_code == 503:
                    assert time.monotonic() < deadline, r.text
                    time.sleep(0.5)
                assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == export["sha256"]
                assert _downloads(stack, export["id"]) == 1
    finally:
        drop_pg_database(database_url)


def _entries(stack, action: str, export_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    from archive.models import LedgerEntry

    with stack.services.db.snapshot() as s:
        rows = s.execute(select(LedgerEntry.details).where(LedgerEntry.action == action)).scalars()
        return [d for d in map(json.loads, rows) if d.get("export") == export_id]


def test_an_export_download_the_store_cuts_short_is_recorded_as_interrupted(request, tmp_path, s3_server) -> None:
    """The S3 server dies while a court clerk downloads an export: the clerk gets part of the
    ZIP (the connection ends short of its Content-Length). The ledger used to say
    ``export_downloaded``, as if the clerk had received the whole export. Now the download is
    on record from its first byte (``export_download_started``), and its end truthfully:
    ``export_download_interrupted`` with the bytes sent and why; only a whole download is
    ``export_downloaded``."""
    database_url = create_pg_database()
    try:
        with running_stack(request, "services", tmp_path, database_url=database_url) as stack:
            people = _people(stack)
            with stack.client(people["officer"]) as c:
                case = c.post("/api/v1/cases", json={"case_number": f"CUT-{uuid.uuid4().hex[:6]}", "title": "t"}).json()
                # Larger than what the sockets between store, API and clerk hold at once.
                upload(c, case["id"], os.urandom(48 * 1024 * 1024), "other", "big.bin")
            wait_case_sealed(stack, people["officer"], case["id"], 1)
            export = _built_export(stack, people, case["id"])
            assert export["status"] == "ready", export

            with stack.client(people["judge"]) as judge:
                received = 0
                with pytest.raises(httpx.HTTPError):
                    with judge.stream("GET", f"/api/v1/exports/{export['id']}/download") as r:
                        assert r.status_code == 200
                        for chunk in r.iter_raw():
                            if not received:
                                s3_server.kill()
                            received += len(chunk)
                assert 0 < received < export["size"]
            deadline = time.monotonic() + 20
            while not (cut := _entries(stack, "export_download_interrupted", export["id"])):
                assert time.monotonic() < deadline, "no export_download_interrupted entry"
                time.sleep(0.2)
            assert _downloads(stack, export["id"]) == 0
            assert len(_entries(stack, "export_download_started", export["id"])) == 1
            assert received <= cut[0]["sent"] < export["size"] and cut[0]["reason"], cut

            s3_server.start_again()
            deadline = time.monotonic() + 60
            with stack.client(people["judge"]) as judge:
                while (r := judge.get(f"/api/v1/exports/{export['id']}/download")).status_code == 503:
                    assert time.monotonic() < deadline, r.text
                    time.sleep(0.5)
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == export["sha256"]
            assert _downloads(stack, export["id"]) == 1  # recorded before the last byte left
            assert len(_entries(stack, "export_download_interrupted", export["id"])) == 1
    finally:
        drop_pg_database(database_url)


def test_a_verification_the_store_cannot_answer_records_no_failure(request, tmp_path, s3_server) -> None:
    """``verify-item`` and ``verify-case`` while the S3 server is down: a store that does not
    answer says nothing about the evidence. They used to record the original as unreadable
    (``fixity_checked`` and ``item_verified`` failed, a ``case_verified`` receipt failed) in
    the append-only ledger, a false statement a court would later read in an export."""
    from archive.models import EvidenceItem, LedgerEntry, VerificationReceipt

    database_url = create_pg_database()
    try:
        with running_stack(request, "services", tmp_path, database_url=database_url) as stack:
            people = {"officer": stack.user(role="officer", unit="unit-x")}
            case = _one_document_case(stack, people)
            item_id = case["items"][0]["id"]
            first = stack.cli("verify-case", case["id"])
            assert first.returncode in (0, 3), first.stdout + first.stderr  # up: a checkpoint anchors it

            def outcomes() -> list[tuple[str, str]]:
                with stack.services.db.snapshot() as s:
                    rows = s.execute(select(LedgerEntry.action, LedgerEntry.details).where(
                        LedgerEntry.case_id == case["id"],
                        LedgerEntry.action.in_(("fixity_checked", "item_verified", "case_verified")))).all()
                return [(action, json.loads(details)["outcome"]) for action, details in rows]

            before = outcomes()
            s3_server.kill()
            for command in (("verify-item", item_id), ("verify-case", case["id"])):
                r = stack.cli(*command)
                # Exit 4, "not checked", said in Chinese unless the locale says English.
                assert r.returncode == 4 and "unreachable" in r.stderr and "FAILED" not in r.stderr, \
                    (command, r.stdout, r.stderr)
                assert "未能核验" in r.stderr and "对象存储不可达" in r.stderr, r.stderr
            # The receipt ends at once, truthfully: incomplete, the store unreachable (it said
            # "running" until a worker carried it out again once the store answered).
            assert outcomes() == [*before, ("case_verified", "incomplete")]
            with stack.services.db.snapshot() as s:
                assert s.get(EvidenceItem, item_id).flags == []
                receipt = s.execute(select(VerificationReceipt).where(VerificationReceipt.case_id == case["id"])
                                    .order_by(VerificationReceipt.created_at.desc()).limit(1)).scalar_one()
                assert receipt.status == "incomplete" and receipt.finished_at is not None
                assert [p["reason"] for p in receipt.pending] == ["store_unavailable"]
            english = run_cli({**stack.env, "LC_ALL": "en_US.UTF-8"}, "verify-case", case["id"])
            assert english.returncode == 4 and "could not verify case" in english.stderr, english.stderr

            s3_server.start_again()
            # The gateway answers a listing before its volume server serves objects again (on a
            # busy machine, seconds later): until then a read is still unreachable or failing
            # (500s), not checked (exit 4), no finding.
            deadline = time.monotonic() + 60
            while True:
                r = stack.cli("verify-item", item_id)
                if r.returncode != 4 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert r.returncode == 0, r.stdout + r.stderr
            assert outcomes()[len(before) + 2:] == [("fixity_checked", "ok"), ("item_verified", "ok")]
    finally:
        drop_pg_database(database_url)


def test_a_queued_verification_the_store_never_answers_ends_incomplete(request, tmp_path, s3_server) -> None:
    """A reviewer's verification, carried out by a worker, while the store stays down: once its
    attempts were used up, the worker ended the receipt ``failed`` and recorded
    ``case_verified`` failed, a finding no check made. It ends ``incomplete``, its pending
    reason ``store_unavailable``, as ``verify-case`` does."""
    database_url = create_pg_database()
    try:
        with running_stack(request, "services", tmp_path, database_url=database_url,
                           extra_env={"EVIDENCE_WORK_MAX_ATTEMPTS": "1"}) as stack:
            people = _people(stack)
            case = _one_document_case(stack, people)
            s3_server.kill()
            with stack.client(people["requester"]) as reviewer:
                r = reviewer.post(f"/api/v1/cases/{case['id']}/verify")
                assert r.status_code == 202, r.text
                deadline = time.monotonic() + 60
                while (receipt := next(v for v in reviewer.get(f"/api/v1/cases/{case['id']}/verifications").json()
                                       if v["id"] == r.json()["id"]))["status"] in ("queued", "running"):
                    assert time.monotonic() < deadline, receipt
                    time.sleep(0.5)
            assert receipt["status"] == "incomplete", receipt
            assert [p["reason"] for p in receipt["pending"]] == ["store_unavailable"], receipt
            assert not [c for c in receipt["checks"] if c["outcome"] == "failed"], receipt
    finally:
        drop_pg_database(database_url)
