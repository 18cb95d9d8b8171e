"""The case's legal life on the pages (no browser): the stage-move form of the case's handlers,
the legal-review form of the unit's reviewers (never shown to a handler), the reviewer's queue
of reviews due, the closing gates, legal holds and retention on the administrator's page
(refused to a reviewer), and the yearly figures page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.tools import CLIENT_TLS, csrf_of, sign_in

ASPECTS = ("subject", "facts", "basis", "discretion", "procedure")


@contextmanager
def _browser(stack, token: str, lang: str = "en") -> Iterator[httpx.Client]:
    """A browser signed in with ``token``, reading the pages in ``lang``."""
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60, cookies={"evidence_lang": lang}) as b:
        assert sign_in(b, token).status_code == 303
        yield b


def _new_case(stack, officer: str) -> dict:
    with stack.client(officer) as c:
        r = c.post("/api/v1/cases", json={"case_number": f"L-{uuid.uuid4().hex[:8]}", "title": "某网吧违规经营案"})
        assert r.status_code == 201, r.text
        return r.json()


def _review_form(csrf: str, *, checkpoint: str = "filing", decision: str = "approve", faults: tuple[str, ...] = (),
                 opinion: str = "依法立案") -> dict[str, str]:
    form = {"csrf_token": csrf, "checkpoint": checkpoint, "decision": decision, "opinion": opinion}
    for name in ASPECTS:
        if name not in faults:
            form[f"aspect_{name}_ok"] = "on"
        form[f"aspect_{name}_comment"] = f"{name} checked"
    return form


def _stage(stack, token: str, case_id: str) -> str:
    with stack.client(token) as c:
        return c.get(f"/api/v1/cases/{case_id}").json()["stage"]


def _review(stack, reviewer: str, path: str, checkpoint: str, **form: str) -> None:
    """``reviewer`` records a legal review at ``checkpoint`` on the case page ``path``."""
    with _browser(stack, reviewer) as b:
        r = b.post(f"{path}/reviews", data=_review_form(csrf_of(b.get(path).text), checkpoint=checkpoint, **form))
        assert r.status_code == 303, r.text


def _move(stack, officer: str, path: str, *targets: str) -> None:
    """The handler ``officer`` moves the case of page ``path`` through ``targets`` in turn."""
    with _browser(stack, officer) as b:
        for to in targets:
            r = b.post(f"{path}/stage", data={"csrf_token": csrf_of(b.get(path).text), "to": to, "reason": "下一步"})
            assert r.status_code == 303, r.text


def _to_service(stack, officer: str, reviewer: str, path: str) -> None:
    """Review and move a case without items from filed to service (closable)."""
    _review(stack, reviewer, path, "filing")
    _move(stack, officer, path, "investigation", "notice", "legal_review")
    _review(stack, reviewer, path, "approval")
    _move(stack, officer, path, "decision", "service")


def test_handler_moves_the_stage_through_the_page_after_the_reviewers_filing_review(stack):
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer, other_officer = stack.user(role="officer", unit=unit), stack.user(role="officer", unit=unit)
    reviewer = stack.user(role="reviewer", unit=unit)
    case = _new_case(stack, officer)
    path = f"/cases/{case['id']}"

    with _browser(stack, officer) as b:
        page = b.get(path).text
        # The handler: a stage form offering the allowed moves, a close button, no review form.
        assert 'data-testid="stage-form"' in page and 'data-testid="review-form"' not in page
        targets = re.findall(r'<option value="([a-z_]+)"', page[page.index('id="stage-to"'):page.index("</select>", page.index('id="stage-to"'))])
        assert targets == ["investigation", "withdrawn", "terminated", "referred"]
        assert 'data-code="stage_not_closable"' in page and 'data-code="too_few_reviews"' in page
        assert 'data-testid="case-close"' in page
        csrf = csrf_of(page)
        assert b.post(f"{path}/stage", data={"to": "investigation", "reason": "x"}).status_code == 403  # no CSRF
        # The filing review is missing: the gate is shut, nothing moves.
        shut = b.post(f"{path}/stage", data={"csrf_token": csrf, "to": "investigation", "reason": "证据已初步固定"})
        assert shut.status_code == 409 and "stage_gate" in shut.text
        assert b.post(f"{path}/stage", data={"csrf_token": csrf, "to": "notice", "reason": "skip"}).status_code == 409
        assert b.post(f"{path}/stage", data={"csrf_token": csrf, "to": "investigation",
                                             "reason": "  "}).status_code == 422
        # Closing from the page refuses with every reason.
        refused = b.post(f"{path}/close", data={"csrf_token": csrf})
        assert refused.status_code == 409 and "case_not_ready" in refused.text
    assert _stage(stack, officer, case["id"]) == "filed"

    with _browser(stack, reviewer) as b:
        queue = b.get("/queue").text
        assert f'data-testid="queue-review" data-case-id="{case["id"]}"' in queue
        page = b.get(path).text
        assert 'data-testid="review-form"' in page and 'data-testid="stage-form"' not in page
        assert 'data-testid="case-close"' not in page
        csrf = csrf_of(page)
        faulty = b.post(f"{path}/reviews", data=_review_form(csrf, faults=("facts",)))
        assert faulty.status_code == 422 and "approval_with_faults" in faulty.text
        r = b.post(f"{path}/reviews", data=_review_form(csrf))
        assert r.status_code == 303 and "notice=review_recorded" in r.headers["location"]
        page = b.get(path).text
        row = re.search(r'<tr data-testid="review-row"[^>]*data-checkpoint="filing" data-decision="approve">.*?</tr>',
                        page, re.S)
        assert row, page
        sealed = re.search(r'data-testid="review-sealed" data-sealed-at="([^"]+)"', row.group(0)).group(1)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d", sealed)
        assert f'data-case-id="{case["id"]}"' not in b.get("/queue").text  # no longer due
        # A reviewer does not move stages.
        assert b.post(f"{path}/stage", data={"csrf_token": csrf, "to": "investigation",
                                             "reason": "x"}).status_code == 403
    with stack.client(reviewer) as c:
        reviews = c.get(f"/api/v1/cases/{case['id']}/reviews").json()
    assert [(x["checkpoint"], x["decision"]) for x in reviews] == [("filing", "approve")]
    assert reviews[0]["aspects"]["facts"] == {"ok": True, "comment": "facts checked"}

    with _browser(stack, other_officer) as b:  # an officer of the unit who does not handle the case
        page = b.get(path).text
        assert 'data-testid="stage-form"' not in page and 'data-testid="review-form"' not in page
        r = b.post(f"{path}/stage", data={"csrf_token": csrf_of(page), "to": "investigation", "reason": "x"})
        assert r.status_code == 403 and "not_a_handler" in r.text

    with _browser(stack, officer, lang="zh") as b:
        csrf = csrf_of(b.get(path).text)
        r = b.post(f"{path}/stage", data={"csrf_token": csrf, "to": "investigation", "reason": "证据已初步固定"})
        assert r.status_code == 303 and "notice=stage_moved" in r.headers["location"]
        page = b.get(path).text
        assert 'data-testid="stage-move" data-to="investigation"' in page and "证据已初步固定" in page
        assert "调查取证" in page  # the stage's Chinese name
        listing = b.get("/cases").text
        assert re.search(rf'data-case-id="{case["id"]}".*?data-testid="case-stage" data-stage="investigation"',
                         listing, re.S)
    assert _stage(stack, officer, case["id"]) == "investigation"
    with stack.services.db.snapshot() as s:
        from sqlalchemy import select

        from archive.models import LedgerEntry

        actions = s.execute(select(LedgerEntry.action).where(LedgerEntry.case_id == case["id"])).scalars().all()
    assert "case_stage_moved" in actions and "legal_review_recorded" in actions


def _review_section(stack, reviewer: str, path: str, lang: str = "en") -> tuple[list[str], list[str], str]:
    """What ``reviewer`` sees of the review form on the case page ``path``: the checkpoints it
    offers, those it says are done, and the section's text."""
    with _browser(stack, reviewer, lang=lang) as b:
        page = b.get(path).text
    section = page[page.index('id="reviews"'):page.index('data-testid="reviews"')]
    offered = []
    if 'id="review-checkpoint"' in section:
        select = section[section.index('id="review-checkpoint"'):section.index("</select>")]
        offered = re.findall(r'<option value="([a-z_]+)"', select)
    return offered, re.findall(r'data-testid="review-done" data-checkpoint="([a-z_]+)"', section), section


def test_the_review_form_offers_only_what_can_be_reviewed_and_says_what_is_done(stack):
    """An approved checkpoint is done: the API would record another review there, which from the
    same reviewer counts for nothing, so the form no longer offers it; the page names the
    approved checkpoints (zh/en) and says when the stage needs no review. The closing review is
    offered again to another reviewer only while the case lacks approving reviews to close."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    first, second = stack.user(role="reviewer", unit=unit), stack.user(role="reviewer", unit=unit)
    path = f"/cases/{_new_case(stack, officer)['id']}"
    assert _review_section(stack, first, path)[:2] == (["filing"], [])
    _review(stack, first, path, "filing")
    offered, done, section = _review_section(stack, first, path, lang="zh")
    assert (offered, done) == ([], ["filing"]), section
    assert "已通过的审核节点： <span" in section and "立案审核" in section
    assert "案件当前阶段的法制审核均已通过，无需再审核。" in section
    offered, done, section = _review_section(stack, first, path)
    assert "Reviews approved at:" in section and "Every legal review of the case&#39;s current stage is approved" in section
    # In discussion both approval and committee reviews are recorded; once approval is approved,
    # only committee is offered (approval was offered, selected second, before).
    _move(stack, officer, path, "investigation", "notice", "legal_review", "discussion")
    assert _review_section(stack, first, path)[:2] == (["approval", "committee"], ["filing"])
    _review(stack, first, path, "approval")
    assert _review_section(stack, first, path)[:2] == (["committee"], ["filing", "approval"])

    # A case withdrawn after filing has only its closing checkpoint left: approved by one
    # reviewer (2 approving reviews of 3), it is offered to another, whose approval counts.
    path = f"/cases/{_new_case(stack, officer)['id']}"
    _review(stack, first, path, "filing")
    _move(stack, officer, path, "withdrawn")
    _review(stack, first, path, "closing")
    assert _review_section(stack, first, path)[:2] == ([], ["filing", "closing"])
    offered, done, section = _review_section(stack, second, path)
    assert (offered, done) == (["closing"], ["filing", "closing"])
    assert 'data-testid="review-again"' in section and "at least 3 approving reviews" in section
    _review(stack, second, path, "closing")
    assert _review_section(stack, second, path)[:2] == ([], ["filing", "closing"])
    with _browser(stack, officer) as b:
        assert 'data-testid="closing-ready"' in b.get(path).text


def test_legal_hold_and_retention_forms_are_the_administrators_only(stack):
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer, reviewer = stack.user(role="officer", unit=unit), stack.user(role="reviewer", unit=unit)
    admin = stack.user(role="admin", unit="hq")
    case = _new_case(stack, officer)
    path = f"/cases/{case['id']}"
    with _browser(stack, reviewer) as b:
        csrf = csrf_of(b.get(path).text)
        r = b.post(f"{path}/hold", data={"csrf_token": csrf, "reason": "诉讼中"})
        assert r.status_code == 403 and "forbidden_role" in r.text
        r = b.post(f"{path}/retention", data={"csrf_token": csrf, "retention_class": "fixed_10y", "reason": "x"})
        assert r.status_code == 403
        assert b.get("/admin").status_code == 403
    with stack.client(admin) as c:
        assert c.get(f"/api/v1/cases/{case['id']}/holds").json() == []

    with _browser(stack, admin) as b:
        page = b.get("/admin").text
        assert 'data-testid="retention-classes"' in page and 'data-testid="disposal-report"' in page
        assert f'data-testid="record-row" data-case-id="{case["id"]}" data-held="false"' in page
        csrf = csrf_of(page)
        assert b.post(f"{path}/hold", data={"csrf_token": csrf, "reason": " "}).status_code == 422
        r = b.post(f"{path}/hold", data={"csrf_token": csrf, "reason": "行政诉讼进行中"})
        assert r.status_code == 303 and "notice=hold_placed" in r.headers["location"]
        assert b.post(f"{path}/hold", data={"csrf_token": csrf, "reason": "again"}).status_code == 409
        assert f'data-case-id="{case["id"]}" data-held="true"' in b.get("/admin").text
        r = b.post(f"{path}/retention", data={"csrf_token": csrf, "retention_class": "fixed_10y", "reason": "一般案件"})
        assert r.status_code == 303
        assert b.post(f"{path}/retention", data={"csrf_token": csrf, "retention_class": "nope",
                                                 "reason": "x"}).status_code == 422
    # The admin page's report link opens a page in the reader's language, not the API's JSON.
    with _browser(stack, admin, lang="zh") as b:
        report = b.get("/disposal")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        row = re.search(rf'<tr data-testid="disposal-row" data-case-id="{case["id"]}">(.*?)</tr>', report.text, re.S)
        assert row and "暂不可处置" in report.text, report.text
        assert "案件处于“立案”阶段，尚未结束" in row.group(1) and "案件处于法律保留中" in row.group(1), row.group(1)
        assert "+08:00" in report.text  # made at a local time
        assert b.get("/api/v1/retention/disposal-report").json()["not_eligible"]  # the JSON link, same session
    with _browser(stack, reviewer) as b:
        assert b.get("/disposal").status_code == 403
    with _browser(stack, officer) as b:
        assert 'data-testid="legal-hold-status"' in b.get(path).text and "行政诉讼进行中" in b.get(path).text
        listing = b.get("/cases").text
        assert re.search(rf'data-case-id="{case["id"]}".*?data-testid="case-hold"', listing, re.S)
    with _browser(stack, admin) as b:
        csrf = csrf_of(b.get("/admin").text)
        r = b.post(f"{path}/hold", data={"csrf_token": csrf, "reason": "诉讼终结", "change": "lift"})
        assert r.status_code == 303 and "notice=hold_lifted" in r.headers["location"]
    with stack.client(admin) as c:
        found = c.get(f"/api/v1/cases/{case['id']}/holds").json()
        assert [(h["reason"], h["active"], h["release_reason"]) for h in found] == [("行政诉讼进行中", False, "诉讼终结")]
        assert c.get(f"/api/v1/cases/{case['id']}/retention").json()["retention_class"] == "fixed_10y"


def test_yearly_figures_page_for_reviewers_and_admins(stack):
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    reviewer, officer = stack.user(role="reviewer", unit=unit), stack.user(role="officer", unit=unit)
    _new_case(stack, officer)
    with _browser(stack, reviewer) as b:
        page = b.get("/figures?year=2026")
        assert page.status_code == 200
        assert 'href="/api/v1/figures.csv?year=2026"' in page.text
        assert re.search(r'data-figure="cases_filed" data-key="">\s*<td>[^<]*</td><td></td><td>1</td>', page.text)
        csv = b.get("/api/v1/figures.csv?year=2026")
        assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    with _browser(stack, officer) as b:
        assert b.get("/figures").status_code == 403


@pytest.mark.slow  # waits for the closing record to be sealed
def test_handler_closes_the_case_on_the_page_and_reads_its_sealed_record(stack):
    """A case with no items, reviewed three times (filing, approval, closing): the page shows
    it ready, the handler's close button seals its archive record, and the page links to it."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer, reviewer = stack.user(role="officer", unit=unit), stack.user(role="reviewer", unit=unit)
    case = _new_case(stack, officer)
    path = f"/cases/{case['id']}"
    _review(stack, reviewer, path, "filing")
    _move(stack, officer, path, "investigation", "notice", "legal_review")
    _review(stack, reviewer, path, "approval")
    with _browser(stack, officer) as b:
        assert 'data-testid="outcome-form"' not in b.get(path).text  # not before the decision
    _move(stack, officer, path, "decision", "service")
    # The handler records the outcome on the page (不予处罚 needs its reason); the reviewer
    # reads it but has no form.
    with _browser(stack, officer) as b:
        page = b.get(path).text
        assert 'data-outcome="undecided"' in page and 'data-testid="outcome-form"' in page
        assert b.post(f"{path}/outcome", data={"csrf_token": csrf_of(page), "outcome": "no_penalty",
                                                "reason": " "}).status_code == 422
        assert b.post(f"{path}/outcome", data={"csrf_token": csrf_of(page), "outcome": "pardon",
                                                "reason": "x"}).status_code == 422
        r = b.post(f"{path}/outcome", data={"csrf_token": csrf_of(page), "outcome": "no_penalty",
                                            "reason": "违法行为轻微并及时改正"})
        assert r.status_code == 303 and "notice=outcome_recorded" in r.headers["location"]
    with _browser(stack, reviewer) as b:
        page = b.get(path).text
        assert 'data-outcome="no_penalty"' in page and "违法行为轻微并及时改正" in page
        assert 'data-testid="outcome-form"' not in page
    _review(stack, reviewer, path, "closing")
    with _browser(stack, officer) as b:
        page = b.get(path).text
        assert 'data-testid="closing-ready"' in page and 'data-testid="closing-gate"' not in page, \
            re.findall(r'data-code="([a-z_]+)"', page)
        r = b.post(f"{path}/close", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303 and "notice=case_closed" in r.headers["location"]
        page = b.get(path).text
        assert 'data-testid="case-archive"' in page and 'data-testid="case-close"' not in page
        assert 'data-testid="stage-form"' not in page
        record_url = re.search(r'href="([^"]+)" data-testid="case-archive-record"', page).group(1)
        seal_url = re.search(r'href="([^"]+)" data-testid="case-archive-seal"', page).group(1)
        record, seal = b.get(record_url), b.get(seal_url)
        assert record.status_code == 200 and record.json()["case"]["id"] == case["id"]
        assert seal.status_code == 200 and seal.headers["content-type"] == "application/pkcs7-signature"
        assert b.post(f"{path}/close", data={"csrf_token": csrf_of(page)}).status_code == 409
        assert 'data-testid="reopen-form"' not in page  # a handler cannot approve its reopening
    assert _stage(stack, officer, case["id"]) == "closed"
    # A legal reviewer reopens it from the page, with a reason; it returns to investigation.
    with _browser(stack, reviewer) as b:
        page = b.get(path).text
        assert 'data-testid="reopen-form"' in page and 'data-testid="reopen-reason"' in page
        r = b.post(f"{path}/stage", data={"csrf_token": csrf_of(page), "to": "investigation", "reason": ""})
        assert r.status_code == 422  # a reason is required
        r = b.post(f"{path}/stage", data={"csrf_token": csrf_of(page), "to": "investigation",
                                          "reason": "新证据：当事人提交补充材料"})
        assert r.status_code == 303, r.text
        page = b.get(path).text
        assert 'data-testid="reopen-form"' not in page and "新证据：当事人提交补充材料" in page
    assert _stage(stack, officer, case["id"]) == "investigation"


def test_handler_links_a_stage_document_on_the_page(stack):
    """The notice the officer uploaded is linked to the case's stage as its 告知书 from the case
    page; the link is listed (and in the API's stage view); a reviewer reads it but gets no form."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer, reviewer = stack.user(role="officer", unit=unit), stack.user(role="reviewer", unit=unit)
    case, other = _new_case(stack, officer), _new_case(stack, officer)
    path = f"/cases/{case['id']}"
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "告知书.pdf"},
                      content=b"%PDF-1.4 notice " + uuid.uuid4().hex.encode()).json()
        stranger = c.post(f"/api/v1/cases/{other['id']}/evidence", params={"kind": "document", "filename": "x.pdf"},
                          content=b"%PDF-1.4 other " + uuid.uuid4().hex.encode()).json()
    with _browser(stack, officer) as b:
        page = b.get(path).text
        assert 'data-testid="document-form"' in page and 'data-testid="stage-document"' not in page
        csrf = csrf_of(page)
        assert b.post(f"{path}/stage-documents", data={"csrf_token": csrf, "item": item["id"],
                                                       "role": "verdict"}).status_code == 422
        assert b.post(f"{path}/stage-documents", data={"csrf_token": csrf, "item": stranger["id"],
                                                       "role": "notice"}).status_code == 404
        r = b.post(f"{path}/stage-documents", data={"csrf_token": csrf, "item": item["id"], "role": "notice",
                                                    "note": "当场送达"})
        assert r.status_code == 303 and "notice=document_linked" in r.headers["location"]
        page = b.get(path).text
    rows = re.findall(r'data-testid="stage-document" data-item-id="([^"]+)" data-role="([^"]+)" data-stage="([^"]+)"', page)
    assert rows == [(item["id"], "notice", "filed")] and "当场送达" in page
    with stack.client(officer) as c:
        listed = c.get(f"/api/v1/cases/{case['id']}/stage").json()["documents"]
    assert [(d["item"], d["role"]) for d in listed] == [(item["id"], "notice")], listed
    with _browser(stack, reviewer) as b:
        page = b.get(path).text
        assert 'data-testid="stage-document"' in page and 'data-testid="document-form"' not in page
        assert b.post(f"{path}/stage-documents", data={"csrf_token": csrf_of(page), "item": item["id"],
                                                       "role": "decision"}).status_code == 403


def test_closing_gates_speak_the_pages_language(stack):
    """A Chinese page names each gate in Chinese with what it is about (a stage, a count, a
    file name), never the API's English explanation; the English page gives that."""
    officer = stack.user(role="officer", unit=f"unit-{uuid.uuid4().hex[:6]}")
    case = _new_case(stack, officer)
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"statement\n",
                   params={"kind": "document", "filename": "询问笔录.txt"})
        assert r.status_code == 201, r.text
    with stack.client(officer) as c:
        reasons = c.get(f"/api/v1/cases/{case['id']}/closing-gates").json()["reasons"]
    by_code = {g["code"]: g for g in reasons}
    assert by_code["stage_not_closable"]["subject"] == "filed"
    assert by_code["too_few_reviews"]["subject"] == "0/3"

    def gates(page: str) -> list[str]:
        return re.findall(r'data-testid="closing-gate"[^>]*>(.*?)</li>', page)

    with _browser(stack, officer, lang="zh") as b:
        shown = gates(b.get(f"/cases/{case['id']}").text)
    assert any("当前阶段不能结案" in g and "处于“立案”阶段的案件不能结案；可结案的阶段：执行、移送、送达、终结、撤案" in g
               for g in shown), shown
    assert any("通过的法制审核少于三次" in g and "本案通过的法制审核 0 次，至少需要 3 次" in g for g in shown), shown
    assert any("证据未签章" in g and "询问笔录.txt" in g for g in shown), shown
    assert not any(re.search(r"[a-z]{4,} [a-z]{4,}", re.sub(r"<[^>]+>", "", g)) for g in shown), shown
    with _browser(stack, officer, lang="en") as b:
        shown = gates(b.get(f"/cases/{case['id']}").text)
    assert any("cannot close" in g for g in shown), shown


def test_a_returned_closing_review_is_said_with_its_opinion_on_the_chinese_page(stack):
    """The closing gate of a returned closing review says, in the page's language, which review
    returned the case and the reviewer's opinion; the API keeps its English explanation."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer, reviewer = stack.user(role="officer", unit=unit), stack.user(role="reviewer", unit=unit)
    case = _new_case(stack, officer)
    path = f"/cases/{case['id']}"
    _to_service(stack, officer, reviewer, path)
    _review(stack, reviewer, path, "closing", decision="return", faults=("procedure",), opinion="送达回证缺失")
    with stack.client(officer) as c:
        reasons = {g["code"]: g for g in c.get(f"/api/v1/cases/{case['id']}/closing-gates").json()["reasons"]}
    message = reasons["closing_review_returned"]["message"]
    review = re.fullmatch(r"the latest closing review \((\S+)\) returned the case: 送达回证缺失", message).group(1)

    def gate(lang: str) -> str:
        with _browser(stack, officer, lang=lang) as b:
            page = b.get(path).text
        return re.search(r'data-code="closing_review_returned">(.*?)</li>', page).group(1)

    zh = gate("zh")
    assert f"结案审核被退回</strong> <span class=\"muted\">最近一次结案审核（{review}）退回了本案：送达回证缺失" in zh, zh
    assert "returned the case" not in zh and "closing review" not in zh
    assert message in gate("en")


def test_a_stage_move_refused_for_a_missing_review_names_the_review_in_chinese(stack):
    """The Chinese error page of a stage move whose gate is shut names the review it lacks (as the
    English page and the API do), besides the code's general explanation; the API's JSON keeps
    its code and English message."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    case = _new_case(stack, officer)
    path = f"/cases/{case['id']}"
    pages = {}
    for lang in ("zh", "en"):
        with _browser(stack, officer, lang) as b:
            shut = b.post(f"{path}/stage", data={"csrf_token": csrf_of(b.get(path).text), "to": "investigation",
                                                 "reason": "证据已初步固定"})
            assert shut.status_code == 409, shut.text
            pages[lang] = shut.text
    assert '<p data-testid="error-particulars">本案没有立案审核</p>' in pages["zh"], pages["zh"]
    assert "离开当前阶段前须有通过的法制审核。" in pages["zh"]
    assert "the case has no filing review" not in pages["zh"]
    assert "the case has no filing review" in pages["en"] and "error-particulars" not in pages["en"]
    with stack.client(officer) as c:
        api = c.post(f"/api/v1/cases/{case['id']}/stage", json={"to": "investigation", "reason": "证据已初步固定"})
    assert api.status_code == 409
    assert (api.json()["error"]["code"], api.json()["error"]["message"]) == ("stage_gate", "the case has no filing review")
    assert _stage(stack, officer, case["id"]) == "filed"
