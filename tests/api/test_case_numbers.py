"""A case number is unique within its unit: another unit may use it, and nothing a unit is
told reveals another unit's case; look-ups by number pick the right unit's case."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from archive.exports.models import CourtRequest
from archive.models import Case, VerificationReceipt


def _create(stack, token: str, number: str):  # type: ignore[no-untyped-def]
    with stack.client(token) as c:
        return c.post("/api/v1/cases", json={"case_number": number, "title": "同号案件"})


def test_two_units_may_use_one_number_but_a_unit_only_once(stack):
    number = f"文旅罚〔2026〕{uuid.uuid4().hex[:6]}号"
    a, b = stack.user(role="officer", unit="unit-a"), stack.user(role="officer", unit="unit-b")
    first, second = _create(stack, a, number), _create(stack, b, number)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["vault"] != second.json()["vault"]  # vaults are named by id, not by number
    assert (first.json()["unit"], second.json()["unit"]) == ("unit-a", "unit-b")
    again = _create(stack, b, f" {number} ")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "case_number_taken")
    assert "unit-a" not in again.text and first.json()["id"] not in again.text
    with stack.client(b) as c:
        assert c.get(f"/api/v1/cases/{first.json()['id']}").status_code == 404  # like an unknown one
        listed = [x for x in c.get("/api/v1/cases?limit=1000").json() if x["case_number"] == number]
        assert [x["id"] for x in listed] == [second.json()["id"]]


def test_a_number_that_reads_as_one_the_unit_has_is_taken(stack):
    """An input method in full-width mode writes ``ＷＡ－１`` where another officer wrote ``WA-1``:
    both were kept, two cases of one unit under numbers a person reads as one, the record of a
    case split in two (and a court asking for the number finds one of them). A number that reads
    as one the unit has, whatever its character width, case or spacing, is 409
    ``case_number_taken`` naming the number as kept; another unit may still use it."""
    stem = uuid.uuid4().hex[:6].upper()
    kept = f"WA{stem}-1 （2026）"
    a, b = stack.user(role="officer", unit="unit-a"), stack.user(role="officer", unit="unit-b")
    first = _create(stack, a, kept)
    assert first.status_code == 201, first.text
    wide = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in f"WA{stem}-1")
    for twin in (f"{wide} （2026）", f"wa{stem.lower()}-1 (2026)", f"WA{stem}-1　（2026）", f"WA{stem}-1   (2026)"):
        again = _create(stack, a, twin)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "case_number_taken"), (twin, again.text)
        assert kept in again.json()["error"]["message"]
    assert _create(stack, b, f"{wide} （2026）").status_code == 201  # another unit's number is no matter
    assert _create(stack, a, f"WA{stem}-1（2026）").status_code == 201  # no space: another number
    with stack.client(a) as c:
        mine = [x["case_number"] for x in c.get("/api/v1/cases?limit=1000").json() if f"WA{stem}" in x["case_number"]]
        assert sorted(mine) == sorted([kept, f"WA{stem}-1（2026）"]), mine


def test_numbers_that_read_alike_created_at_the_same_moment_make_one_case(stack):
    """Eight officers of one unit create, at the same moment, numbers a person reads as one:
    exactly one case is made, the others are 409 ``case_number_taken`` (each creation looked at
    the unit's numbers before any of the others had committed)."""
    import threading

    stem = uuid.uuid4().hex[:6].upper()
    wide = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in f"RC{stem}-1")
    twins = [f"RC{stem}-1", wide, f"rc{stem.lower()}-1", f"RC{stem}-1 ", f"Rc{stem}-1", f"rC{stem.lower()}-1",
             wide.lower(), f"RC{stem.lower()}-1"]
    officers = [stack.user(role="officer", unit="unit-a") for _ in twins]
    start = threading.Barrier(len(twins))
    answers: list[tuple[int, str]] = []

    def create(token: str, number: str) -> None:
        with stack.client(token) as c:
            start.wait()
            r = c.post("/api/v1/cases", json={"case_number": number, "title": "同时立案"})
            answers.append((r.status_code, r.json().get("error", {}).get("code", "")))

    threads = [threading.Thread(target=create, args=pair) for pair in zip(officers, twins)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == [(201, "")] + [(409, "case_number_taken")] * (len(twins) - 1), answers


def test_court_requests_name_the_unit_when_the_number_is_shared(stack):
    number = f"SHARED-{uuid.uuid4().hex[:6]}"
    only = f"ONLY-{uuid.uuid4().hex[:6]}"
    a, b = stack.user(role="officer", unit="unit-a"), stack.user(role="officer", unit="unit-b")
    case_a, case_b = _create(stack, a, number).json(), _create(stack, b, number).json()
    only_b = _create(stack, b, only).json()
    court = stack.user(role="court", unit="court-1")
    body = {"court_reference": "(2026)京0101行初1号", "legal_basis": "行政诉讼法第40条"}
    with stack.client(court) as c:
        ambiguous = c.post("/api/v1/export-requests", json={**body, "case_number": number})
        for_b = c.post("/api/v1/export-requests", json={**body, "case_number": number, "unit": "unit-b"})
        unique = c.post("/api/v1/export-requests", json={**body, "case_number": only})
        unknown_unit = c.post("/api/v1/export-requests", json={**body, "case_number": number, "unit": "unit-nope"})
    assert (ambiguous.status_code, ambiguous.json()["error"]["code"]) == (422, "unit_required")
    assert "unit-a" not in ambiguous.text and "unit-b" not in ambiguous.text  # names no unit to a court
    assert for_b.status_code == unique.status_code == unknown_unit.status_code == 202
    with stack.services.db.read() as s:
        linked = {r.id: r.case_id for r in s.execute(select(CourtRequest).where(CourtRequest.id.in_(
            [for_b.json()["id"], unique.json()["id"], unknown_unit.json()["id"]]))).scalars()}
    assert linked == {for_b.json()["id"]: case_b["id"], unique.json()["id"]: only_b["id"],
                      unknown_unit.json()["id"]: None}
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as ra:
        assert for_b.json()["id"] not in {r["id"] for r in ra.get("/api/v1/export-requests").json()}
    assert case_a["id"] not in linked.values()


def test_verify_case_by_a_shared_number_asks_for_the_unit(stack):
    number = f"CLI-{uuid.uuid4().hex[:6]}"
    a, b = stack.user(role="officer", unit="unit-a"), stack.user(role="officer", unit="unit-b")
    case_a, case_b = _create(stack, a, number).json(), _create(stack, b, number).json()
    refused = stack.cli("verify-case", number)
    assert refused.returncode != 0 and "unit-a, unit-b" in refused.stderr and "--unit" in refused.stderr
    ran = stack.cli("verify-case", number, "--unit", "unit-b")
    assert ran.returncode in (0, 3), ran.stderr
    assert stack.cli("verify-case", number, "--unit", "unit-nope").returncode == 1
    with stack.services.db.read() as s:
        cases = set(s.execute(select(VerificationReceipt.case_id).where(
            VerificationReceipt.case_id.in_([case_a["id"], case_b["id"]]))).scalars())
        assert s.get(Case, case_b["id"]).case_number == number
    assert cases == {case_b["id"]}


def test_a_court_finds_a_case_by_a_number_typed_as_it_reads(stack):
    """A court types the number its papers print: full-width (``ＷＡ－１``, an input method in
    full-width mode), with ``［］``, ``[]`` or ``【】`` where the case was numbered with the
    official ``〔〕``. The look-up was exact: such a request was kept but reached no case, and
    no reviewer ever saw it. It now finds the case, as creating a case under such a number is
    refused as taken (one rule for both, ``case_number_key``)."""
    stem = uuid.uuid4().hex[:6].upper()
    kept = f"文旅罚〔2026〕WA{stem}-1号"
    officer = stack.user(role="officer", unit="unit-a")
    case = _create(stack, officer, kept).json()
    wide = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in f"WA{stem}-1")
    typed = [f"文旅罚〔2026〕{wide}号", f"文旅罚［２０２６］WA{stem}-1号", f"文旅罚[2026]wa{stem.lower()}-1号",
             f"文旅罚【2026】WA{stem}–1号"]
    court = stack.user(role="court", unit="court-1")
    body = {"court_reference": "(2026)京0101行初2号", "legal_basis": "行政诉讼法第40条"}
    with stack.client(court) as c:
        sent = [c.post("/api/v1/export-requests", json={**body, "case_number": number}) for number in typed]
        other = c.post("/api/v1/export-requests", json={**body, "case_number": f"文旅罚〔2026〕WA{stem}-2号"})
    assert [r.status_code for r in sent + [other]] == [202] * (len(typed) + 1), [r.text for r in sent]
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as reviewer:
        seen = {r["id"]: r for r in reviewer.get("/api/v1/export-requests").json()}
    assert [seen.get(r.json()["id"], {}).get("case_id") for r in sent] == [case["id"]] * len(typed)
    assert [seen[r.json()["id"]]["case_number"] for r in sent] == typed  # kept as the court typed it
    assert other.json()["id"] not in seen
    for number in typed[:3]:  # one rule: a number a court finds the case by is taken in its unit (an en dash
        # is no character a case number is written with)
        again = _create(stack, officer, number)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "case_number_taken"), again.text
