"""Records management on both stacks: legal holds (administrators only; an S3 object legal
hold read back from the server, a marker on the local store), retention classes and the
disposal-eligibility report (which deletes nothing), and the yearly figures of a seeded year
computed by hand and compared exactly with the JSON and the CSV."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from archive.models import EvidenceItem, LedgerEntry
from tests.conftest import Stack, receive_directly

UTC = timezone.utc


def _code(r) -> str:  # type: ignore[no-untyped-def]
    return r.json()["error"]["code"]


def _entries(stack: Stack, case_id: str, action: str) -> list[dict]:
    with stack.services.db.snapshot() as s:
        rows = s.execute(select(LedgerEntry).where(LedgerEntry.case_id == case_id, LedgerEntry.action == action)
                         .order_by(LedgerEntry.seq)).scalars()
        return [{"actor": e.actor, **json.loads(e.details)} for e in rows]


def _vault_versions(stack: Stack, vault: str) -> list[tuple[str, str | None]]:
    """Every object version under the vault, as the S3 server lists them."""
    from minio import Minio

    env = stack.env
    server = Minio(env["EVIDENCE_S3_ENDPOINT"], env["EVIDENCE_S3_ACCESS_KEY"], env["EVIDENCE_S3_SECRET_KEY"], secure=False)
    listed = server.list_objects(env["EVIDENCE_S3_BUCKET"], prefix=f"{vault}/", recursive=True, include_version=True)
    return [(o.object_name, o.version_id) for o in listed if not o.object_name.endswith("/.legal-hold")]


def _server_hold(stack: Stack, key: str, version: str | None) -> bool:
    """The legal hold of one object version, asked of the S3 server itself (not our store)."""
    from minio import Minio
    from minio.error import S3Error

    env = stack.env
    server = Minio(env["EVIDENCE_S3_ENDPOINT"], env["EVIDENCE_S3_ACCESS_KEY"], env["EVIDENCE_S3_SECRET_KEY"], secure=False)
    try:
        return server.is_object_legal_hold_enabled(env["EVIDENCE_S3_BUCKET"], key, version_id=version)
    except S3Error as exc:  # SeaweedFS: a version that never had a hold has no configuration
        if exc.code == "NoSuchObjectLegalHold":
            return False
        raise


def _add_derived(stack: Stack, item_id: str, role: str) -> None:
    from archive.evidence.items import store_derived

    store_derived(db=stack.services.db, store=stack.services.store, item_id=item_id, role=role,
                  chunks=[f"derived {role}".encode()], media_type="text/plain")


def test_legal_hold_is_placed_and_lifted_by_administrators_only(stack, case, officer):
    admin = stack.user(role="admin", unit="hq")
    reviewer = stack.user(role="reviewer", unit="unit-a")
    path = f"/api/v1/cases/{case['id']}"
    with stack.client(officer) as o, stack.client(reviewer) as rv, stack.client(admin) as a:
        # Received without the worker, so no seal adds objects while the test counts them.
        item = {"id": receive_directly(stack, case, b"held evidence", filename="a.bin")}
        _add_derived(stack, item["id"], "thumbnail")
        assert o.get(path).json()["legal_hold"] is False

        for who in (rv, o):
            r = who.post(f"{path}/hold", json={"reason": "court order 2026-17"})
            assert r.status_code == 403 and _code(r) == "forbidden_role", r.text
        r = a.post(f"{path}/hold", json={"reason": "   "})
        assert r.status_code == 422 and _code(r) == "invalid_request"
        r = a.post(f"{path}/hold", json={"reason": "court order 2026-17"})
        assert r.status_code == 201, r.text
        hold = r.json()
        assert hold["active"] and hold["reason"] == "court order 2026-17" and hold["objects"] == 2
        r = a.post(f"{path}/hold", json={"reason": "again"})
        assert r.status_code == 409 and _code(r) == "legal_hold_exists"
        assert o.get(path).json()["legal_hold"] is True
        assert rv.get(path).json()["legal_hold"] is True
        assert [c["legal_hold"] for c in o.get("/api/v1/cases", params={"limit": 1000}).json() if c["id"] == case["id"]] == [True]

        # Evidence arriving under the hold is held too (the store holds the whole vault).
        later = {"id": receive_directly(stack, case, b"later evidence", filename="b.bin")}
        store = stack.services.store
        vault = case["vault"]
        if stack.name == "services":
            versions = _vault_versions(stack, vault)
            assert len(versions) == 3  # two originals and the derived object
            assert all(_server_hold(stack, key, version) for key, version in versions)
        else:
            assert (stack.settings.resolved_storage_dir / vault / ".legal-hold").is_file()
        for it in (item, later):
            assert store.legal_hold(f"{vault}/originals/{it['id']}") is True
        from archive.errors import ObjectLocked

        with pytest.raises(ObjectLocked):
            store.discard(f"{vault}/originals/{later['id']}", version_id=None)
        # An upload refused under the hold is still refused for what it is (its bytes stay,
        # unregistered: the held vault gives up nothing).
        r = o.post(f"{path}/evidence", params={"kind": "other", "filename": "bad.bin", "sha256": "0" * 64},
                   content=b"not what was declared")
        assert r.status_code == 409 and _code(r) == "hash_mismatch"
        assert len(o.get(f"{path}/evidence").json()) == 2

        for who in (rv, o):
            r = who.post(f"{path}/hold/release", json={"reason": "I say so"})
            assert r.status_code == 403 and _code(r) == "forbidden_role"
        assert o.get(path).json()["legal_hold"] is True
        r = a.post(f"{path}/hold/release", json={"reason": "court order lifted"})
        assert r.status_code == 200, r.text
        assert r.json()["active"] is False and r.json()["release_reason"] == "court order lifted"
        r = a.post(f"{path}/hold/release", json={"reason": "again"})
        assert r.status_code == 409 and _code(r) == "no_legal_hold"
        assert o.get(path).json()["legal_hold"] is False
        if stack.name == "services":
            assert not any(_server_hold(stack, key, version) for key, version in _vault_versions(stack, vault))
        else:
            assert not (stack.settings.resolved_storage_dir / vault / ".legal-hold").exists()
        assert store.legal_hold(f"{vault}/originals/{item['id']}") is False
        # Lifting the hold takes nothing away: the originals are still there, byte for byte.
        assert o.get(f"/api/v1/evidence/{item['id']}/content").content == b"held evidence"
        history = o.get(f"{path}/holds").json()
        assert [(h["reason"], h["release_reason"], h["active"]) for h in history] == [
            ("court order 2026-17", "court order lifted", False)]
    admin_name = f"user:{hold['placed_by']}"
    assert [(e["actor"], e["reason"]) for e in _entries(stack, case["id"], "legal_hold_placed")] == [
        (admin_name, "court order 2026-17")]
    assert [(e["actor"], e["reason"]) for e in _entries(stack, case["id"], "legal_hold_lifted")] == [
        (admin_name, "court order lifted")]


# --- seeding: cases with known stage moves, reviews, outcomes and gaps ------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _seed_case(stack: Stack, *, unit: str, number: str, filed: str, moves: list[tuple[str, str]],
               reviews: list[tuple[str, str, str, str | None]] = (), outcome: tuple[str, str] | None = None,
               gaps: list[tuple[str, str, str, bool]] = (), retention_class: str | None = None) -> str:
    """A case written straight through the service layer and the database: filed at ``filed``,
    then moved (to, at) in order; reviews (checkpoint, decision, at, minutes); an outcome
    (outcome, at); gaps (level, status, found_at, current). Returns its id."""
    from archive.cases.models import LegalReview
    from archive.cases.service import create_case
    from archive.continuity.models import Gap
    from archive.identity.users import add_user
    from archive.records.models import CaseOutcome, CaseRetention

    with stack.services.db.session() as s:
        user, _ = add_user(s, name=f"seed-{uuid.uuid4().hex[:8]}", unit=unit, role="officer")
        case = create_case(s, store=stack.services.store, user=user, case_number=number, title="seeded")
        case.created_at = at(filed)
        stage = _move(s, case, moves, actor_id=user.id)
        for checkpoint, decision, when, minutes in reviews:
            s.add(LegalReview(
                case_id=case.id, checkpoint=checkpoint, stage=stage, aspects={}, decision=decision, opinion="",
                discussion_minutes=minutes, reviewer_id=user.id, created_at=at(when), record="{}",
                record_sha256="0" * 64, cades=b"seed", sm2={}, ledger_seq=1,
            ))
        if outcome is not None:
            s.add(CaseOutcome(case_id=case.id, outcome=outcome[0], reason="seeded", recorded_by=user.id,
                              recorded_at=at(outcome[1])))
        for i, (level, status, found, current) in enumerate(gaps):
            s.add(Gap(case_id=case.id, key=f"k{i}", level=level, start=at(found), end=at(found) + timedelta(seconds=5),
                      duration_seconds=5.0, cause="seeded", current=current, status=status,
                      explanation=None if status == "open" else "battery", found_at=at(found)))
        if retention_class is not None:
            s.add(CaseRetention(case_id=case.id, retention_class=retention_class, reason="seeded", set_by=user.id))
        return case.id


def _move(session, case, moves: list[tuple[str, str]], *, actor_id: str | None = None):  # type: ignore[no-untyped-def]
    """Move ``case`` through ``moves`` ((to, at) in order) as stage moves with custody entries."""
    from archive.cases.models import CaseStageMove
    from archive.custody import ledger
    from archive.models import CaseStage

    stage = case.stage
    for to, when in moves:
        seq = ledger.append_now(session, actor="test:seed", action="case_stage_moved", case_id=case.id,
                            details={"from": stage.value, "to": to}).seq
        session.add(CaseStageMove(case_id=case.id, from_stage=stage, to_stage=CaseStage(to), at=at(when),
                                  actor_id=actor_id, ledger_seq=seq))
        stage = CaseStage(to)
    case.stage = stage
    return stage


def test_retention_classes_and_the_disposal_report_delete_nothing(stack, officer):
    admin = stack.user(role="admin", unit="hq")
    reviewer = stack.user(role="reviewer", unit="unit-a")
    tag = uuid.uuid4().hex[:6]
    unit = f"disposal-{tag}"
    # Ended 2011-01-01 01:00 in Shanghai (17:00 UTC the day before): its ten years count
    # from 1 January 2012, local time.
    a = _seed_case(stack, unit=unit, number=f"D-{tag}-A", filed="2010-03-01T02:00:00Z", moves=[])
    b = _seed_case(stack, unit=unit, number=f"D-{tag}-B", filed="2010-03-01T02:00:00Z",
                   moves=[("closed", "2010-06-01T02:00:00Z")], retention_class="fixed_10y")
    c = _seed_case(stack, unit=unit, number=f"D-{tag}-C", filed="2010-03-01T02:00:00Z",
                   moves=[("closed", "2010-06-01T02:00:00Z")])
    d = _seed_case(stack, unit=unit, number=f"D-{tag}-D", filed="2020-03-01T02:00:00Z",
                   moves=[("closed", "2020-06-01T02:00:00Z")], retention_class="fixed_10y")
    e = _seed_case(stack, unit=unit, number=f"D-{tag}-E", filed="2010-03-01T02:00:00Z",
                   moves=[("investigation", "2010-03-02T02:00:00Z")], retention_class="fixed_10y")
    f = _seed_case(stack, unit=unit, number=f"D-{tag}-F", filed="2012-03-01T02:00:00Z",
                   moves=[("withdrawn", "2012-04-01T02:00:00Z")], retention_class="fixed_10y")
    with stack.client(admin) as adm, stack.client(reviewer) as rv:
        # Case A holds an original under COMPLIANCE retention, received before it closed.
        item = adm.post(f"/api/v1/cases/{a}/evidence", params={"kind": "other", "filename": "kept.bin"},
                        content=b"kept forever").json()
        from archive.models import Case

        with stack.services.db.session() as s:
            _move(s, s.get(Case, a), [("investigation", "2010-03-02T02:00:00Z"), ("closed", "2010-12-31T17:00:00Z")])
        assert [c["name"] for c in adm.get("/api/v1/retention/classes").json()] == ["permanent", "fixed_30y", "fixed_10y"]
        r = rv.put(f"/api/v1/cases/{a}/retention", json={"retention_class": "fixed_10y", "reason": "general case"})
        assert r.status_code in (403, 404)
        r = adm.put(f"/api/v1/cases/{a}/retention", json={"retention_class": "forever-ish", "reason": "x"})
        assert r.status_code == 422 and _code(r) == "unknown_retention_class"
        assert adm.get(f"/api/v1/cases/{a}").json()["retention_class"] == "permanent"  # the default
        r = adm.put(f"/api/v1/cases/{a}/retention", json={"retention_class": "fixed_10y", "reason": "general case (一般案件)"})
        assert r.status_code == 200, r.text
        assert r.json()["retention_class"] == "fixed_10y" and r.json()["years"] == 10 and r.json()["default"] is False
        assert adm.get(f"/api/v1/cases/{a}").json()["retention_class"] == "fixed_10y"
        assert adm.post(f"/api/v1/cases/{b}/hold", json={"reason": "pending appeal"}).status_code == 201

        assert rv.get("/api/v1/retention/disposal-report").status_code == 403
        with stack.services.db.read() as s:
            items_before = s.execute(select(func.count(EvidenceItem.id))).scalar_one()
        r = adm.get("/api/v1/retention/disposal-report")
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["default_class"] == "permanent" and report["time_zone"] == "Asia/Shanghai"
        mine = {x["case_id"]: x for x in report["eligible"] + report["not_eligible"] if x["case_id"] in {a, b, c, d, e, f}}
        eligible = {x["case_id"] for x in report["eligible"]}
        assert {k for k in mine if k in eligible} == {a, f}

        def codes(case_id: str) -> list[str]:
            return [reason["code"] for reason in mine[case_id]["reasons"]]

        assert codes(a) == [] and codes(f) == []
        assert at(mine[a]["retain_until"]) == at("2021-12-31T16:00:00Z")  # 2022-01-01 00:00 +08:00
        assert at(mine[f]["retain_until"]) == at("2022-12-31T16:00:00Z")
        assert [n["code"] for n in mine[a]["notes"]] == ["store_retention_running"]
        assert codes(b) == ["legal_hold"] and mine[b]["legal_hold"] is True
        assert codes(c) == ["retention_permanent"]
        assert codes(d) == ["retention_running"] and at(mine[d]["retain_until"]) == at("2030-12-31T16:00:00Z")
        assert "2031-01-01" in mine[d]["reasons"][0]["message"]
        assert codes(e) == ["case_open"]
        # A report, nothing more: every item and object is still there.
        with stack.services.db.read() as s:
            assert s.execute(select(func.count(EvidenceItem.id))).scalar_one() == items_before
        assert adm.get(f"/api/v1/evidence/{item['id']}/content").content == b"kept forever"
        assert stack.services.store.stat(f"{item['vault']}/originals/{item['id']}").size == len(b"kept forever")
    assert [(x["retention_class"], x["previous"], x["reason"]) for x in _entries(stack, a, "retention_class_set")] == [
        ("fixed_10y", "permanent", "general case (一般案件)")]


# The seeded year, 2025 in Asia/Shanghai: from 2024-12-31T16:00Z to 2025-12-31T16:00Z.
STAGES = ["filed", "investigation", "notice", "hearing", "legal_review", "discussion", "decision", "service",
          "enforcement", "closed", "withdrawn", "terminated", "referred"]


def _seed_year(stack: Stack, unit: str, tag: str) -> dict[str, str]:
    n = {k: f"Y{tag}-{k}" for k in ("F1", "F2", "F3", "F4", "F5", "F6")}
    _seed_case(stack, unit=unit, number=n["F1"], filed="2025-01-10T02:00:00Z", moves=[
        ("investigation", "2025-01-20T02:00:00Z"), ("notice", "2025-02-01T02:00:00Z"), ("hearing", "2025-02-11T02:00:00Z"),
        ("legal_review", "2025-02-21T02:00:00Z"), ("decision", "2025-03-03T02:00:00Z"), ("service", "2025-03-05T02:00:00Z"),
        ("enforcement", "2025-03-10T02:00:00Z"), ("closed", "2025-04-09T02:00:00Z")],
        reviews=[("filing", "approve", "2025-01-11T02:00:00Z", None), ("approval", "approve", "2025-02-25T02:00:00Z", None),
                 ("closing", "approve", "2025-04-08T02:00:00Z", None)],
        outcome=("penalty", "2025-03-03T03:00:00Z"),
        gaps=[("in_file", "accepted", "2025-03-01T02:00:00Z", True), ("between_segments", "open", "2025-03-02T02:00:00Z", True),
              ("in_file", "accepted", "2025-05-01T02:00:00Z", False)])
    _seed_case(stack, unit=unit, number=n["F2"], filed="2025-02-01T02:00:00Z", moves=[
        ("investigation", "2025-02-05T02:00:00Z"), ("legal_review", "2025-03-07T02:00:00Z"),
        ("discussion", "2025-03-17T02:00:00Z"), ("decision", "2025-03-27T02:00:00Z"), ("closed", "2025-05-06T02:00:00Z")],
        reviews=[("filing", "approve", "2025-02-02T02:00:00Z", None),
                 ("committee", "approve", "2025-03-20T02:00:00Z", "支委会讨论：不予处罚"),
                 ("closing", "return", "2025-05-05T02:00:00Z", None)],
        outcome=("no_penalty", "2025-03-27T03:00:00Z"),
        gaps=[("in_file", "rejected", "2025-04-01T02:00:00Z", True)])
    _seed_case(stack, unit=unit, number=n["F3"], filed="2025-03-01T02:00:00Z",
               moves=[("investigation", "2025-03-02T02:00:00Z"), ("withdrawn", "2025-03-12T02:00:00Z")])
    # Filed 2026-01-01 00:30 in Shanghai: not a 2025 case, though it is 2025 in UTC.
    _seed_case(stack, unit=unit, number=n["F4"], filed="2025-12-31T16:30:00Z",
               moves=[("investigation", "2026-01-05T02:00:00Z")])
    # Filed 2024-12-31 23:30 in Shanghai: a 2024 case, closed in 2025 with one approving review.
    _seed_case(stack, unit=unit, number=n["F5"], filed="2024-12-31T15:30:00Z",
               moves=[("investigation", "2025-01-02T02:00:00Z"), ("closed", "2025-06-01T02:00:00Z")],
               reviews=[("approval", "approve", "2025-05-20T02:00:00Z", None)],
               outcome=("no_penalty", "2025-05-21T02:00:00Z"))
    _seed_case(stack, unit=unit, number=n["F6"], filed="2025-11-01T02:00:00Z",
               moves=[("investigation", "2025-11-11T02:00:00Z"), ("notice", "2026-01-10T02:00:00Z")],
               reviews=[("filing", "approve", "2025-11-02T02:00:00Z", "")],
               gaps=[("action_window", "explained", "2025-12-31T15:00:00Z", True),
                     ("action_window", "open", "2025-12-31T16:30:00Z", True)])
    return n


def _expected(n: dict[str, str], unit: str) -> dict:
    """The 2025 figures of the seeded unit, worked out by hand from the seed above."""
    by_stage = dict.fromkeys(STAGES, 0) | {"closed": 2, "withdrawn": 1, "investigation": 1}
    gap = lambda found, explained, accepted, rejected, open_: {  # noqa: E731
        "found": found, "explained": explained, "accepted": accepted, "rejected": rejected, "open": open_}
    days = lambda stays, average: {"stays": stays, "average_days": average}  # noqa: E731
    return {
        "year": 2025, "time_zone": "Asia/Shanghai", "unit": unit,
        "start": "2024-12-31T16:00:00Z", "end": "2025-12-31T16:00:00Z",
        "cases_filed": 4,  # F1 F2 F3 F6
        "by_stage": by_stage,
        "by_outcome": {"penalty": 1, "no_penalty": 1, "withdrawn": 1, "terminated": 0, "referred": 0, "undecided": 1},
        "cases_ended": {"closed": 3, "withdrawn": 1, "terminated": 0, "referred": 0},  # F1 F2 F5; F3
        "reviews": {
            "recorded": 8,
            "by_checkpoint": {"filing": 3, "committee": 1, "approval": 2, "closing": 2},
            "per_closed_case": [
                {"case_number": n["F1"], "reviews": 3, "approving": 3},
                {"case_number": n["F2"], "reviews": 3, "approving": 2},
                {"case_number": n["F5"], "reviews": 1, "approving": 1},
            ],
            "average_per_closed_case": 2.33,  # 7 / 3
            "fewer_than_three_approving": {"count": 2, "cases": [n["F2"], n["F5"]]},
        },
        "collective_discussion": {"count": 1, "cases": [n["F2"]]},
        "closed_without_penalty": {"count": 2, "cases": [n["F2"], n["F5"]]},
        "average_days_per_stage": {
            "filed": days(5, 5.29),  # F1 10, F2 4, F3 1, F5 1.4375, F6 10
            "investigation": days(4, 50.5),  # F1 12, F2 30, F3 10, F5 150
            "notice": days(1, 10.0), "hearing": days(1, 10.0),
            "legal_review": days(2, 10.0),  # F1 10, F2 10
            "discussion": days(1, 10.0),
            "decision": days(2, 21.0),  # F1 2, F2 40
            "service": days(1, 5.0), "enforcement": days(1, 30.0),
        },
        "gaps": gap(4, 3, 1, 1, 1),
        "gaps_by_level": {
            "action_window": gap(1, 1, 0, 0, 0), "between_segments": gap(1, 0, 0, 0, 1), "in_file": gap(2, 2, 1, 1, 0),
        },
    }


def _expected_csv(e: dict) -> list[list[str]]:
    rows = [["year", "", "2025"], ["unit", "", e["unit"]], ["cases_filed", "", "4"]]
    rows += [["by_stage", k, str(v)] for k, v in e["by_stage"].items()]
    rows += [["by_outcome", k, str(v)] for k, v in e["by_outcome"].items()]
    rows += [["cases_ended", k, str(v)] for k, v in e["cases_ended"].items()]
    rows += [["reviews_recorded", "", "8"]]
    rows += [["reviews_by_checkpoint", k, str(v)] for k, v in e["reviews"]["by_checkpoint"].items()]
    for r in e["reviews"]["per_closed_case"]:
        rows += [["reviews_per_closed_case", r["case_number"], str(r["reviews"])],
                 ["approving_reviews_per_closed_case", r["case_number"], str(r["approving"])]]
    rows += [["average_reviews_per_closed_case", "", "2.33"]]
    for name, listed in (("fewer_than_three_approving", e["reviews"]["fewer_than_three_approving"]),
                         ("collective_discussion", e["collective_discussion"]),
                         ("closed_without_penalty", e["closed_without_penalty"])):
        rows += [[name, "", str(listed["count"])]] + [[f"{name}_case", c, "1"] for c in listed["cases"]]
    for k, v in e["average_days_per_stage"].items():
        rows += [["average_days_per_stage", k, str(v["average_days"])], ["stage_stays", k, str(v["stays"])]]
    for level, counts in [("", e["gaps"]), *e["gaps_by_level"].items()]:
        rows += [[f"gaps_{name}", level, str(counts[name])] for name in ("found", "explained", "accepted", "rejected", "open")]
    return rows


def test_yearly_figures_match_a_seeded_year(stack):
    tag = uuid.uuid4().hex[:6]
    unit = f"figures-{tag}"
    n = _seed_year(stack, unit, tag)
    expected = _expected(n, unit)
    reviewer = stack.user(role="reviewer", unit=unit)
    admin = stack.user(role="admin", unit="hq")
    with stack.client(reviewer) as rv, stack.client(admin) as adm:
        r = rv.get("/api/v1/figures", params={"year": 2025})
        assert r.status_code == 200, r.text
        got = r.json()
        for key in ("start", "end"):
            got[key] = at(got[key]).isoformat().replace("+00:00", "Z")
        assert got == expected
        by_admin = adm.get("/api/v1/figures", params={"year": 2025, "unit": unit}).json()
        assert by_admin["cases_filed"] == 4 and by_admin["reviews"] == expected["reviews"]
        everyone = adm.get("/api/v1/figures", params={"year": 2025}).json()
        assert everyone["unit"] is None and everyone["cases_filed"] >= 4

        r = rv.get("/api/v1/figures.csv", params={"year": 2025})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows[0] == ["figure", "key", "value", "说明"]
        assert [row[:3] for row in rows[1:]] == _expected_csv(expected)
        assert all(row[3] for row in rows[1:])  # every row says what it is in Chinese

        # Who may read them, and what is refused.
        other = stack.user(role="reviewer", unit=f"other-{tag}")
        with stack.client(other) as o:
            assert o.get("/api/v1/figures", params={"year": 2025}).json()["cases_filed"] == 0
            r = o.get("/api/v1/figures", params={"year": 2025, "unit": unit})
            assert r.status_code == 403 and _code(r) == "forbidden_unit"
        with stack.client(stack.user(role="officer", unit=unit)) as off:
            r = off.get("/api/v1/figures", params={"year": 2025})
            assert r.status_code == 403 and _code(r) == "forbidden_role"
            assert off.get("/api/v1/figures.csv", params={"year": 2025}).status_code == 403
        r = adm.get("/api/v1/figures", params={"year": 2025, "unit": f"nowhere-{tag}"})
        assert r.status_code == 404 and _code(r) == "unit_not_found"
        assert rv.get("/api/v1/figures", params={"year": 9998}).json()["cases_filed"] == 0  # the last year there is
        for bad in ("1800", "9999", "twenty", ""):
            r = rv.get("/api/v1/figures", params={"year": bad})
            assert r.status_code == 422 and _code(r) == "invalid_request"


def test_outcome_is_recorded_at_decision_only(stack, case, officer):
    from archive.db import lock_row
    from archive.models import Case, CaseStage

    path = f"/api/v1/cases/{case['id']}/outcome"
    with stack.client(officer) as o:
        assert o.get(path).json() is None
        r = o.post(path, json={"outcome": "no_penalty", "reason": "minor first offence"})
        assert r.status_code == 409 and _code(r) == "case_not_decided"
        with stack.services.db.session() as s:
            lock_row(s, Case, case["id"]).stage = CaseStage.decision
        r = o.post(path, json={"outcome": "warning", "reason": "x"})
        assert r.status_code == 422 and _code(r) == "invalid_request"
        r = o.post(path, json={"outcome": "no_penalty", "reason": "minor first offence (首违不罚)"})
        assert r.status_code == 200, r.text
        assert o.get(path).json()["outcome"] == "no_penalty"
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as rv:
        r = rv.post(path, json={"outcome": "penalty", "reason": "x"})
        assert r.status_code == 403
    assert [(e["outcome"], e["previous"]) for e in _entries(stack, case["id"], "case_outcome_recorded")] == [
        ("no_penalty", None)]
