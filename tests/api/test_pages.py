"""The web pages a reviewer reads: sign-in by token, the unit's cases, one case's record."""

from __future__ import annotations

import hashlib
import html
import os
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import pytest

from archive.identity.users import hash_token
from tests.conftest import receive_directly
from tests.tools import CLIENT_TLS, csrf_of, sign_in


def _browser(stack, lang: str = "en") -> httpx.Client:
    """A browser reading the pages in ``lang`` (the cookie ``?lang=`` sets)."""
    return httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60, cookies={"evidence_lang": lang})


def test_pages_require_sign_in(stack):
    with _browser(stack) as b:
        r = b.get("/cases")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        b.cookies.set("evidence_token", "ev_forged")
        assert b.get("/cases").status_code == 303
        r = sign_in(b, "ev_forged")
        assert r.status_code == 401 and "not valid" in r.text


def test_case_page_shows_items_seals_gaps_and_custody(stack, officer, case):
    data = os.urandom(5000)
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=data).json()
    reviewer = stack.user(role="reviewer", unit="unit-a")
    stack.wait_item(reviewer, item["id"], lambda i: i["seal_status"] == "sealed")
    with _browser(stack) as b:
        r = sign_in(b, reviewer)
        assert r.status_code == 303
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        listing = b.get("/cases")
        assert listing.status_code == 200 and case["case_number"] in listing.text
        page = b.get(f"/cases/{case['id']}")
    assert page.status_code == 200
    assert "scan.bin" in page.text and hashlib.sha256(data).hexdigest() in page.text
    assert hashlib.new("sm3", data).hexdigest() in page.text
    assert "sealed" in page.text and "evidence_received" in page.text and "case_created" in page.text
    assert "No gaps found." in page.text
    # Every moment a person reads is local with its offset, custody details included
    # (retention_until, time-stamp times), never the stored UTC text.
    shown_text = re.sub(r"<[^>]*>", " ", page.text)
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", shown_text), re.findall(r"\S*\d{4}-\d{2}-\d{2}T\S*", shown_text)[:5]


def test_other_units_case_page_is_not_found(stack, case):
    stranger = stack.user(role="reviewer", unit="unit-z")
    with _browser(stack) as b:
        sign_in(b, stranger)
        r = b.get(f"/cases/{case['id']}")
        assert r.status_code == 404 and case["title"] not in r.text
        assert case["case_number"] not in b.get("/cases").text


def test_each_role_reaches_its_own_pages_only(stack):
    """Each role lands on its main page; another role's page answers 403 in the page's language."""
    from tests.tools import csrf_of

    tokens = {role: stack.user(role=role, unit="unit-a") for role in ("officer", "reviewer", "court", "admin")}
    homes = {"officer": "/cases", "reviewer": "/queue", "court": "/court", "admin": "/admin"}
    for role, token in tokens.items():
        with _browser(stack, lang="zh") as b:
            assert sign_in(b, token).headers["location"] == homes[role]
            assert b.get(homes[role]).status_code == 200
            for other, path in homes.items():
                if other != role and not (role == "admin" and path in ("/cases", "/queue")) and path != "/cases":
                    page = b.get(path)
                    assert page.status_code == 403 and 'lang="zh-CN"' in page.text, (role, path)
            if role != "admin":
                form = csrf_of(b.get(homes[role]).text)
                r = b.post("/admin/users", data={"csrf_token": form, "name": "x", "role": "admin", "unit": "x"})
                assert r.status_code == 403
            else:
                name = f"target-{uuid.uuid4().hex[:6]}"
                target = stack.user(role="officer", unit="unit-a", name=name)
                page = b.get("/admin").text
                assert name in re.findall(r'data-user="([^"]+)"', page)
                r = b.post(f"/admin/users/{name}", data={"csrf_token": csrf_of(page), "role": "reviewer",
                                                         "unit": "unit-b", "new_unit": "true"})
                assert r.status_code == 303
                assert f'data-user="{name}"' in b.get("/admin").text
                with stack.services.db.read() as s:
                    from archive.identity.users import find_user

                    changed = find_user(s, name=name)
                    assert changed.role.value == "reviewer" and changed.unit.name == "unit-b"
                device = f"CAM-{uuid.uuid4().hex[:6]}"
                page = b.get("/admin").text
                bad = b.post("/admin/devices", data={"csrf_token": csrf_of(page), "device_id": device, "offset": "abc"})
                assert bad.status_code == 422 and "invalid_clock_offset" in bad.text
                ok = b.post("/admin/devices", data={"csrf_token": csrf_of(page), "device_id": device, "offset": "2.5",
                                                    "source": "measured"})
                assert ok.status_code == 303
                assert device in b.get("/admin").text
                # Revoking the target's token: its next request is refused.
                page = b.get("/admin").text
                row = page[page.index(f'data-user="{name}"'):]
                token_id = re.search(r'action="/admin/tokens/([^/]+)/revoke"', row).group(1)
                assert b.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(page)}).status_code == 303
                with stack.client(target) as api:
                    assert api.get("/api/v1/cases").status_code == 401


def test_a_court_users_case_list_is_their_court_page(stack, officer, case):
    """A court user reached /cases (by address, or an old bookmark) and saw the cases shared
    with them, each linked to a case page their role may not open (403 forbidden_role): the
    list is their court page."""
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    with stack.client(officer) as c:
        c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "n.txt"}, content=b"n")
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as c:
        assert c.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": court_name}).status_code == 201
    with _browser(stack, lang="zh") as b:
        sign_in(b, court)
        for path in ("/cases", "/cases?mine=true"):
            r = b.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/court", (path, r.status_code, r.text[:200])
        assert f'href="/cases/{case["id"]}"' not in b.get("/court").text


def test_officer_sees_the_units_cases_or_only_their_own(stack):
    a, b = stack.user(role="officer", unit="unit-mine"), stack.user(role="officer", unit="unit-mine")
    numbers = {}
    for who, token in (("a", a), ("b", b)):
        with stack.client(token) as c:
            numbers[who] = c.post("/api/v1/cases", json={"case_number": f"M-{uuid.uuid4().hex[:8]}",
                                                         "title": who}).json()["case_number"]
    with _browser(stack) as browser:
        sign_in(browser, a)
        every = browser.get("/cases").text
        mine = browser.get("/cases?mine=true").text
    assert numbers["a"] in every and numbers["b"] in every
    assert numbers["a"] in mine and numbers["b"] not in mine


def test_admin_sees_failed_work_with_its_reason(stack):
    from sqlalchemy import delete

    from archive.models import Work, utcnow

    subject = str(uuid.uuid4())
    with stack.services.db.session() as s:
        s.add(Work(task="evidence.process_item", subject=subject, state="failed", attempts=5, due_at=utcnow(),
                   last_error="probe gave up: the store was unreachable"))
    try:
        with _browser(stack) as b:
            sign_in(b, stack.user(role="admin", unit="hq"))
            page = b.get("/admin").text
        assert 'data-testid="troubled-work"' in page and subject in page
        assert "probe gave up: the store was unreachable" in page
    finally:
        with stack.services.db.session() as s:
            s.execute(delete(Work).where(Work.subject == subject))


@pytest.mark.parametrize(("stored", "chinese"), [
    ("worker worker-host:4242:139872 stopped before finishing (lease ran out)",
     "执行进程 worker-host:4242:139872 未完成即停止（租约已到期）"),
    ("internal error (KeyError); logged", "内部错误（KeyError），已记入日志"),
], ids=["lease_ran_out", "internal_error"])
def test_admin_sees_works_error_in_chinese(stack, stored, chinese):
    """The error kept for work (in English, as the reconciler or the task words it: a worker that
    stopped, an unexpected exception) is said in the page's language on the administrator's work list."""
    from sqlalchemy import delete

    from archive.models import Work, utcnow

    subject = str(uuid.uuid4())
    with stack.services.db.session() as s:
        s.add(Work(task="evidence.process_item", subject=subject, state="failed", attempts=5, due_at=utcnow(),
                   last_error=stored))
    try:
        pages = {}
        for lang in ("zh", "en"):
            with _browser(stack, lang) as b:
                sign_in(b, stack.user(role="admin", unit="hq"))
                pages[lang] = b.get("/admin").text
    finally:
        with stack.services.db.session() as s:
            s.execute(delete(Work).where(Work.subject == subject))
    row = pages["zh"][pages["zh"].index(subject):]
    row = row[:row.index("</tr>")]
    assert chinese in row, row
    assert stored not in pages["zh"]
    assert stored in pages["en"]


def test_images_and_pdfs_are_viewable_in_place_and_nothing_else(stack, officer, case):
    """A reviewer opens a photo or a PDF in the browser (a read: a custody entry); the type is
    what the archive sniffed from the bytes, so a page of HTML named like a photo is only ever
    a download, and an image is shown in a sandbox where nothing can run."""
    import io

    from reportlab.pdfgen import canvas

    from tests.capture.support import PNG

    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    pdf.drawString(72, 720, "record of statements")
    pdf.save()
    files = {"photo.png": PNG, "record.pdf": out.getvalue(),
             "disguised.png": b"<html><script>alert(document.cookie)</script></html>"}
    with stack.client(officer) as c:
        items = {name: c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": name},
                              content=data).json() for name, data in files.items()}
    reviewer = stack.user(role="reviewer", unit="unit-a")
    for item in items.values():
        stack.wait_item(reviewer, item["id"], lambda i: i["seal_status"] == "sealed")
    with _browser(stack) as b:
        sign_in(b, reviewer)
        page = b.get(f"/cases/{case['id']}").text
        views = set(re.findall(r'href="/api/v1/evidence/([0-9a-f-]+)/content\?inline=true"[^>]*data-testid="item-view"',
                               page))
        assert views == {items["photo.png"]["id"], items["record.pdf"]["id"]}, views
    with stack.client(reviewer) as c:
        def reads() -> int:
            entries = c.get("/api/v1/ledger/entries", params={"case_id": case["id"], "limit": 5000}).json()
            return sum(e["action"] == "content_read" for e in entries)

        before = reads()
        photo = c.get(f"/api/v1/evidence/{items['photo.png']['id']}/content", params={"inline": "true"})
        assert photo.status_code == 200 and photo.content == PNG
        assert photo.headers["content-type"] == "image/png" and photo.headers["content-disposition"].startswith("inline")
        assert "sandbox" in photo.headers["content-security-policy"] and photo.headers["x-content-type-options"] == "nosniff"
        record = c.get(f"/api/v1/evidence/{items['record.pdf']['id']}/content", params={"inline": "true"})
        assert record.headers["content-type"] == "application/pdf" and record.headers["content-disposition"].startswith("inline")
        disguised = c.get(f"/api/v1/evidence/{items['disguised.png']['id']}/content", params={"inline": "true"})
        assert disguised.status_code == 200 and disguised.content == files["disguised.png"]
        assert disguised.headers["content-disposition"].startswith("attachment")
        assert disguised.headers["x-content-type-options"] == "nosniff"
        assert reads() == before + 3  # each view is a read of evidence like any other


def test_a_large_case_is_shown_a_page_of_items_at_a_time(stack, officer, case):
    """A case of more items than a page holds shows them a page at a time, oldest first, with
    where the page is and links to the others; the page of the item custody is filtered by;
    rows refreshed for the page shown; a page past the last shows the last, a page that is no
    number is refused."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import insert

    from api.pages.cases import ITEMS_PAGE
    from archive.models import Case, EvidenceItem, EvidenceKind, new_id

    total = 2 * ITEMS_PAGE + 3
    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
    with stack.services.db.session() as s:
        row = s.get(Case, case["id"])
        vault_id, vault_name, uploader = row.vault.id, row.vault.name, row.created_by
        ids = [new_id() for _ in range(total)]
        s.execute(insert(EvidenceItem), [{
            "id": ids[i], "case_id": case["id"], "vault_id": vault_id, "kind": EvidenceKind.bodycam_video,
            "original_filename": f"CAM-01_{i:05d}.mp4", "media_type": "video/mp4", "size": 1000 + i,
            "sha256": hashlib.sha256(f"{case['id']} {i}".encode()).hexdigest(), "storage_key": f"{vault_name}/originals/p{i}",
            "uploaded_by": uploader, "received_at": t0 + timedelta(seconds=i), "status": "processed",
            "flags": [], "details": {}, "processing": {"seal": {"state": "done"}}, "seal_status": "sealed",
        } for i in range(total)])
    rows = re.compile(r'data-testid="item-row" data-item-id="([^"]+)"')
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with _browser(stack) as b:
        sign_in(b, reviewer)
        first = b.get(f"/cases/{case['id']}")
        assert first.status_code == 200
        assert rows.findall(first.text) == ids[:ITEMS_PAGE]
        assert f"Evidence ({total})" in first.text
        assert f"Page 1 of 3: items 1-{ITEMS_PAGE} of {total}" in first.text
        assert 'data-testid="items-next"' in first.text and 'data-testid="items-previous"' not in first.text
        last = b.get(f"/cases/{case['id']}", params={"items_page": 3})
        assert rows.findall(last.text) == ids[2 * ITEMS_PAGE:]
        assert f"items {2 * ITEMS_PAGE + 1}-{total} of {total}" in last.text
        assert 'data-testid="items-previous"' in last.text and 'data-testid="items-next"' not in last.text
        assert rows.findall(b.get(f"/cases/{case['id']}", params={"items_page": 99}).text) == ids[2 * ITEMS_PAGE:]
        # Custody filtered by an item shows the page its row is on.
        held = b.get(f"/cases/{case['id']}", params={"item": ids[ITEMS_PAGE + 7]})
        assert rows.findall(held.text) == ids[ITEMS_PAGE:2 * ITEMS_PAGE] and "Page 2 of 3" in held.text
        # The rows a page refreshes are its own, and the refresh asks for them again.
        fragment = b.get(f"/cases/{case['id']}/items", params={"items_page": 2})
        assert fragment.status_code == 200 and rows.findall(fragment.text) == ids[ITEMS_PAGE:2 * ITEMS_PAGE]
        assert f'hx-get="/cases/{case["id"]}/items?items_page=2"' in fragment.text
        for bad in ("0", "-1", "two"):
            assert b.get(f"/cases/{case['id']}", params={"items_page": bad}).status_code == 422
        b.cookies.set("evidence_lang", "zh")
        zh = b.get(f"/cases/{case['id']}", params={"items_page": 2})
        assert f"第 2 / 3 页：第 {ITEMS_PAGE + 1}–{2 * ITEMS_PAGE} 项，共 {total} 项" in zh.text


def test_a_device_of_many_recordings_is_drawn_as_its_stretches(stack, officer, case):
    """Past MAX_RECORDINGS_DRAWN recordings, a device's track draws its continuous stretches
    (each playing its first recording, saying how many it holds) and says so; every gap is
    still drawn; a device of few recordings keeps one bar each."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import insert

    from api.pages.timeline import MAX_RECORDINGS_DRAWN
    from archive.continuity.models import Gap
    from archive.models import Case, EvidenceItem, EvidenceKind, new_id

    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
    many, hole_after = MAX_RECORDINGS_DRAWN + 50, 100
    starts = [t0 + timedelta(minutes=i + (30 if i > hole_after else 0)) for i in range(many)]  # a 30-minute hole
    recordings = [("CAM-01", f"CAM-01_{i:05d}.mp4", start) for i, start in enumerate(starts)]
    recordings += [("CAM-02", f"CAM-02_{i}.mp4", t0 + timedelta(hours=i)) for i in range(3)]
    with stack.services.db.session() as s:
        row = s.get(Case, case["id"])
        ids = [new_id() for _ in recordings]
        s.execute(insert(EvidenceItem), [{
            "id": ids[n], "case_id": case["id"], "vault_id": row.vault.id, "kind": EvidenceKind.bodycam_video,
            "original_filename": name, "media_type": "video/mp4", "size": 1000 + n, "device_id": device,
            "sha256": hashlib.sha256(f"{case['id']} {n}".encode()).hexdigest(), "recorded_start": start,
            "storage_key": f"{row.vault.name}/originals/t{n}", "uploaded_by": row.created_by,
            "received_at": t0 + timedelta(days=1, seconds=n), "status": "processed", "flags": [], "details": {},
            "processing": {"seal": {"state": "done"}}, "seal_status": "sealed",
            "media_facts": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "streams": [{"codec_type": "video"}],
                            "duration_seconds": 60.0},
        } for n, (device, name, start) in enumerate(recordings)])
        s.add(Gap(case_id=case["id"], key="hole", level="between_segments", device="CAM-01",
                  item_id=ids[hole_after + 1], previous_item_id=ids[hole_after],
                  start=starts[hole_after] + timedelta(minutes=1), end=starts[hole_after + 1],
                  duration_seconds=30 * 60.0, cause="missing segment"))
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with _browser(stack) as b:
        sign_in(b, reviewer)
        page = b.get(f"/cases/{case['id']}")
        fragment = b.get(f"/cases/{case['id']}/gaps")  # what the page asks for while analysis runs
    assert page.status_code == 200 and fragment.status_code == 200
    play = re.compile(r'data-item="([^"]+)" data-at="([^"]+)" data-testid="gap-play"')
    # The hole plays from a few seconds before it, in the recording it follows: the same
    # on the page and in the fragment (which reads only the recordings its gaps name).
    assert play.findall(page.text) == play.findall(fragment.text) == [(ids[hole_after], "57.0")]
    tracks = dict(re.findall(r'<div class="track"><span class="device">([^<]+)</span>(.*?)</div></div>', page.text, re.S))
    assert set(tracks) == {"CAM-01", "CAM-02"}
    stretches = re.findall(r'class="play rec"[^>]*data-item="([^"]+)"[^>]*title="([^"]*)"', tracks["CAM-01"])
    assert [item for item, _ in stretches] == [ids[0], ids[hole_after + 1]]
    assert "(×101)" in stretches[0][1] and f"(×{many - hole_after - 1})" in stretches[1][1]
    assert stretches[0][1].startswith("CAM-01_00000.mp4") and f"CAM-01_{hole_after:05d}.mp4" in stretches[0][1]
    assert re.findall(r'class="play gap"[^>]*data-item="([^"]+)"', tracks["CAM-01"]) == [ids[hole_after]]
    assert re.findall(r'class="play rec"[^>]*data-item="([^"]+)"', tracks["CAM-02"]) == ids[many:]
    assert 'data-testid="timeline-stretched"' in page.text
    assert f"more than {MAX_RECORDINGS_DRAWN} recordings" in page.text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_form_the_page_cannot_read_answers_with_the_error_page(stack, officer, lang):
    """A form missing a field, a page's address asked with a method it does not take, and an
    address no page has answer a browser with the error page in its language (a 422, 405 or
    404 with the machine code in small print), not the API's English JSON; the API's own
    paths keep answering JSON."""
    from api.pages.i18n import FIELD_LABELS
    from archive.i18n.messages import MESSAGES
    from tests.tools import csrf_of

    assert [key for key in FIELD_LABELS.values() if key not in MESSAGES] == []

    with _browser(stack, lang) as b:
        sign_in(b, officer)
        csrf = csrf_of(b.get("/cases").text)
        page = {"Accept": "text/html,application/xhtml+xml"}
        missing = b.post("/cases", data={"csrf_token": csrf, "case_number": f"F-{uuid.uuid4().hex[:6]}"}, headers=page)
        assert missing.status_code == 422 and missing.headers["content-type"].startswith("text/html")
        assert "invalid_request" in missing.text
        assert ("表单缺少必填内容" if lang == "zh" else "title: Field required") in missing.text
        # Named as the form labels it (it said 需要检查的字段：title, the field's name in the HTML).
        assert ("需要检查的字段：案由" if lang == "zh" else "title: Field required") in missing.text
        no_basis = b.post("/court/requests", data={"csrf_token": csrf, "case_number": "X-1", "court_reference": "x"},
                          headers=page)
        assert ("需要检查的字段：调取依据" if lang == "zh" else "legal_basis: Field required") in no_basis.text
        # The same form posted by a script without asking for HTML: still the page (it is one).
        assert b.post("/cases", data={"csrf_token": csrf}).headers["content-type"].startswith("text/html")
        wrong = b.get("/logout", headers=page)
        assert wrong.status_code == 405 and wrong.headers["content-type"].startswith("text/html")
        assert "POST" in wrong.headers["allow"] and "method_not_allowed" in wrong.text
        assert ("不支持的请求方式" if lang == "zh" else "Not available this way") in wrong.text
        unknown = b.get("/no-such-page", headers=page)
        assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
        assert ("未找到" if lang == "zh" else "Not found") in unknown.text
        # Signed in as on every page: the header names them and offers to sign out.
        for shown in (missing, wrong, unknown):
            assert 'data-testid="sign-out"' in shown.text and 'class="who"' in shown.text
        b.cookies.delete("evidence_session")
        assert 'data-testid="sign-out"' not in b.get("/no-such-page", headers=page).text
        api = b.get("/api/v1/no-such-thing", headers=page)
        assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
        assert b.get("/no-such-page").headers["content-type"].startswith("application/json")


def test_the_custody_table_refreshes_with_its_filters_and_only_for_the_unit(stack, officer, case):
    """The case page's custody table, as it asks for itself again after an upload: the same
    filters, the entries written since the page was drawn, and another unit's officer gets the
    404 of an unknown case."""
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"note for custody",
                   params={"kind": "other", "filename": "note.txt"})
        assert r.status_code == 201, r.text
    rows = re.compile(r'data-testid="custody-row" data-action="([^"]+)"')
    with _browser(stack) as b:
        sign_in(b, officer)
        page = b.get(f"/cases/{case['id']}", params={"action": "evidence_received"}).text
        assert (f'hx-get="/cases/{case["id"]}/custody?item=&amp;actor=&amp;action=evidence_received"'
                in page), page
        with stack.client(officer) as c:
            assert c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"a second note",
                          params={"kind": "other", "filename": "note-2.txt"}).status_code == 201
        fragment = b.get(f"/cases/{case['id']}/custody", params={"item": "", "actor": "", "action": "evidence_received"})
        assert fragment.status_code == 200
        assert rows.findall(fragment.text) == ["evidence_received", "evidence_received"]
        assert 'action=evidence_received"' in fragment.text  # the next refresh keeps the filter
        everything = rows.findall(b.get(f"/cases/{case['id']}/custody").text)
        assert "case_created" in everything and len(everything) > 2
    other = stack.user(role="officer", unit="unit-b")
    with _browser(stack) as b:
        sign_in(b, other)
        assert b.get(f"/cases/{case['id']}/custody").status_code == 404


def test_the_court_page_offers_the_verifier_it_tells_courts_to_install(stack):
    """The court page's instructions install the offline verifier; the page links the package
    the archive serves (a court clerk has no code repository), and anyone may fetch it."""
    import io
    import tarfile

    court = stack.user(role="court", unit="court")
    with _browser(stack, lang="zh") as b:
        sign_in(b, court)
        page = b.get("/court").text
    link = re.search(r'<a href="(/api/v1/trust/evidence-verifier\.tar\.gz)" download data-testid="verifier-download">'
                     r'下载离线核验工具（(evidence-verifier-[\d.]+\.tar\.gz)）</a>', page)
    assert link, page
    assert f"pip install {link.group(2)}" in page
    with stack.client(None) as anyone:
        r = anyone.get(link.group(1))
    assert r.status_code == 200 and link.group(2) in r.headers["content-disposition"]
    names = tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz").getnames()
    base = link.group(2).removesuffix(".tar.gz")
    assert f"{base}/pyproject.toml" in names and f"{base}/evidence_verify/cli.py" in names, names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_court_page_lists_each_export_with_the_courts_own_reference(stack, case):
    """A clerk's exports are listed with the reference the court typed when requesting (本院案号,
    in both languages), so they can tell which of their cases an export answers; an export
    shared without a request says it has none."""
    reference = f"(2026)京0101刑初{uuid.uuid4().int % 10000}号"
    name = f"clerk-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court", name=name)
    reviewer = stack.user(role="reviewer", unit="unit-a")
    receive_directly(stack, case, b"an inspection record", sm3=False)
    with stack.client(court) as c:
        body = {"case_number": case["case_number"], "court_reference": reference, "legal_basis": "刑事诉讼法第54条"}
        asked = c.post("/api/v1/export-requests", json=body).json()["id"]
    with stack.client(reviewer) as r:
        answering = r.post(f"/api/v1/cases/{case['id']}/exports", json={"request": asked}).json()["id"]
        unasked = r.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": name}).json()["id"]
    for lang, label in (("zh", "本院案号"), ("en", "Court&#39;s own case reference")):
        with _browser(stack, lang=lang) as b:
            sign_in(b, court)
            page = b.get("/court").text
        table = page[page.index('id="c-exports"'):page.index("</table>", page.index('id="c-exports"'))]
        assert f'<th scope="col">{label}</th>' in table, table
        cells = dict(re.findall(r'data-export-id="([^"]+)".*?data-testid="export-court-reference">([^<]*)<', table, re.S))
        assert cells == {answering: reference, unasked: "—"}, cells


def test_continuity_fragments_say_pending_and_refresh_for_the_unit_only(stack, officer):
    """What the case page asks for again after an upload: the continuity section says the
    analysis is pending (never "No gaps found" or "complete" while an item is processing), the
    timeline and the closing gates answer as fragments of their own, each drawn from a state the
    page compares; another unit's officer gets the 404 of an unknown case."""
    with stack.client(officer) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"F-{uuid.uuid4().hex[:8]}", "title": "fragments"}).json()
    with _browser(stack) as b:
        sign_in(b, officer)
        before = b.get(f"/cases/{case['id']}/gaps").text
        assert 'data-pending="false"' in before and "<span data-settled>No gaps found.</span>" in before
        state = re.search(r'data-state="([0-9a-f]+)"', before).group(1)
        with stack.client(officer) as c:
            assert c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"note for continuity",
                          params={"kind": "other", "filename": "note.txt"}).status_code == 201
        pending = b.get(f"/cases/{case['id']}/gaps").text
        if 'data-pending="true"' in pending:  # the worker may already be done with a note
            # "No gaps found." is there only hidden (for the page to show once the analysis is done).
            assert "<span data-settled hidden>No gaps found.</span>" in pending and "complete</span>" not in pending
            assert "<span data-owed>Recordings are still being processed" in pending, pending
            assert 'hx-trigger="every 3s, refresh"' in pending
        assert re.search(r'data-state="([0-9a-f]+)"', pending).group(1) != state
        timeline = b.get(f"/cases/{case['id']}/timeline")
        assert timeline.status_code == 200 and 'id="timeline"' in timeline.text and "data-drawn=" in timeline.text
        closing = b.get(f"/cases/{case['id']}/closing")
        assert closing.status_code == 200 and 'data-testid="closing-gate"' in closing.text, closing.text
    other = stack.user(role="officer", unit="unit-b")
    with _browser(stack) as b:
        sign_in(b, other)
        for part in ("gaps", "timeline", "closing"):
            assert b.get(f"/cases/{case['id']}/{part}").status_code == 404


HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_signing_in_returns_to_the_page_asked_for_and_only_to_this_site(stack, officer, case):
    """A signed-out reader opening a case page lands there after signing in (not on the role's
    home); a ``next`` naming another site, however written, leads home instead."""
    wanted = f"/cases/{case['id']}?items_page=1"
    with _browser(stack) as b:
        r = b.get(wanted, headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == "/login?" + urlencode({"next": wanted})
        form = b.get(r.headers["location"]).text
        assert f'name="next" value="{html.escape(wanted)}"' in form
        r = b.post("/login", data={"token": officer, "csrf_token": csrf_of(form), "next": wanted})
        assert r.status_code == 303 and r.headers["location"] == wanted
        assert b.get(wanted).status_code == 200
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/\tevil", "evil", "/login?next=/x"):
        with _browser(stack) as b:
            form = b.get("/login", params={"next": hostile}).text
            assert 'name="next"' not in form, hostile
            r = b.post("/login", data={"token": officer, "csrf_token": csrf_of(form), "next": hostile})
            assert r.status_code == 303 and r.headers["location"] == "/cases", (hostile, r.headers["location"])


def test_an_expired_session_or_a_disabled_account_says_why_and_returns_after_signing_in(stack, officer, case):
    """A session that lapses while a page is open, or an account disabled while a form is being
    filled in, sends the reader to sign in with a message saying so (not silently), and back to the
    page after; an htmx refresh of part of the page sends the whole page (not the sign-in form into
    the table it refreshes)."""
    from sqlalchemy import update

    from archive.models import WebSession

    page = f"/cases/{case['id']}"
    with _browser(stack, lang="zh") as b:
        sign_in(b, officer)
        with stack.services.db.session() as s:
            s.execute(update(WebSession).where(WebSession.token_hash == hash_token(b.cookies["evidence_session"]))
                      .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
            s.commit()
        r = b.get(f"{page}/items", headers={"HX-Request": "true", "HX-Current-URL": f"{stack.url}{page}"})
        assert r.status_code == 200 and r.text == ""
        assert r.headers["hx-redirect"] == "/login?" + urlencode({"next": page, "why": "expired"})
        r = b.get(page, headers=HTML)
        assert r.headers["location"] == "/login?" + urlencode({"next": page, "why": "expired"})
        form = b.get(r.headers["location"]).text
        assert "会话已过期，请重新登录" in form
        r = b.post("/login", data={"token": officer, "csrf_token": csrf_of(form), "next": page})
        assert r.headers["location"] == page
    admin = stack.user(role="admin", unit="hq")
    name = f"gone-{uuid.uuid4().hex[:6]}"
    with stack.client(admin) as a:
        token = a.post("/api/v1/users", json={"name": name, "unit": "unit-a", "role": "officer"}).json()["token"]["token"]
        with _browser(stack, lang="zh") as b:
            sign_in(b, token)
            form = b.get("/cases").text
            assert a.patch(f"/api/v1/users/{name}", json={"active": False}).json()["active"] is False
            r = b.post("/cases", data={"case_number": "X-1", "title": "t", "csrf_token": csrf_of(form)},
                       headers={**HTML, "Referer": f"{stack.url}/cases?mine=true"})
            assert r.status_code == 303
            assert r.headers["location"] == "/login?" + urlencode({"next": "/cases?mine=true", "why": "disabled"})
            assert "账号已停用" in b.get(r.headers["location"]).text


def test_a_closed_case_offers_no_upload(stack, officer):
    """A closed case's vault accepts nothing (409 case_closed): its page says so instead of
    offering an upload area that could only fail."""
    from sqlalchemy import update

    from archive.models import Case, CaseStage

    with stack.client(officer) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"C-{uuid.uuid4().hex[:8]}", "title": "closed"}).json()
    with _browser(stack, lang="zh") as b:
        sign_in(b, officer)
        assert 'id="upload"' in b.get(f"/cases/{case['id']}").text
        with stack.services.db.session() as s:
            s.execute(update(Case).where(Case.id == case["id"]).values(stage=CaseStage.closed))
            s.commit()
        page = b.get(f"/cases/{case['id']}").text
        assert 'id="upload"' not in page and 'data-testid="upload-input"' not in page
        assert 'data-testid="upload-closed"' in page and "本案已结案" in page


def test_the_exports_list_follows_the_worker_and_a_request_can_be_withdrawn(stack, officer, case):
    """The exports list asks for itself again while an export is approved, waiting or being
    built, so its status and download link show without a reload (it stayed 已批准); a
    requested export is withdrawn from the page, with a reason."""
    with stack.client(officer) as c:
        assert c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"an inspection record to export",
                      params={"kind": "other", "filename": "record.txt"}).status_code == 201
    first, second = stack.user(role="reviewer", unit="unit-a"), stack.user(role="reviewer", unit="unit-a")
    recipient = f"court-{uuid.uuid4().hex[:6]}"
    stack.user(role="court", unit="court-1", name=recipient)
    path = f"/cases/{case['id']}"
    rows = re.compile(r'data-testid="export-row" data-export-id="([^"]+)" data-status="([^"]+)"')
    with _browser(stack, lang="zh") as a:
        sign_in(a, first)
        for _ in range(2):
            r = a.post(f"{path}/exports", data={"csrf_token": csrf_of(a.get(path).text), "recipient": recipient})
            assert r.status_code == 303, r.text
        fragment = a.get(f"{path}/exports").text
        (kept, _), (dropped, _) = rows.findall(fragment)[:2]
        assert 'hx-trigger="refresh"' in fragment and 'data-testid="export-withdraw"' in fragment
        r = a.post(f"/exports/{dropped}/withdraw", data={"csrf_token": csrf_of(a.get(path).text), "reason": "重复申请"})
        assert r.status_code == 303 and "notice=export_withdrawn" in r.headers["location"], r.text
    with _browser(stack, lang="zh") as b:
        sign_in(b, second)
        r = b.post(f"/exports/{kept}/approve", data={"csrf_token": csrf_of(b.get(path).text)})
        assert r.status_code == 303, r.text
        fragment = b.get(f"{path}/exports").text
        status = dict(rows.findall(fragment))
        assert status[dropped] == "withdrawn" and "重复申请" in fragment and "已撤回" in fragment
        if status[kept] in ("approved", "waiting", "building"):
            assert 'hx-trigger="every 3s, refresh"' in fragment, fragment
        deadline = time.monotonic() + 120
        while dict(rows.findall(fragment))[kept] != "ready":
            assert time.monotonic() < deadline, fragment
            time.sleep(0.5)
            fragment = b.get(f"{path}/exports").text
        assert 'data-testid="export-download"' in fragment and 'hx-trigger="refresh"' in fragment
    other = stack.user(role="reviewer", unit="unit-b")
    with _browser(stack) as c:
        sign_in(c, other)
        assert c.get(f"{path}/exports").status_code == 404


def test_an_officer_records_an_enforcement_action_on_the_case_page(stack, officer, case):
    """Actions (a seizure from 10:02 to 11:40, the devices assigned) could be recorded through the
    API only: the officer's page had no way to. The page's times are wall times in the corps'
    zone; a refused window is said in Chinese; a reviewer sees the actions, not the form."""
    with _browser(stack, lang="zh") as b:
        sign_in(b, officer)
        page = b.get(f"/cases/{case['id']}").text
        assert 'data-testid="action-form"' in page and 'data-testid="actions-none"' in page
        form = {"csrf_token": csrf_of(page), "kind": "seizure", "start": "2026-03-01T10:02", "end": "2026-03-01T11:40:00",
                "devices": "CAM-07，CAM-08 ROOM-1", "description": "查封现场演出设备", "record_item": ""}
        r = b.post(f"/cases/{case['id']}/actions", data=form)
        assert r.status_code == 303 and "notice=action_recorded#action-" in r.headers["location"], (r.status_code, r.text[:300])
        shown = b.get(f"/cases/{case['id']}").text
        row = re.search(r'<tr id="action-[^"]+" data-testid="action-row".*?</tr>', shown, re.S).group(0)
        assert "查封扣押" in row and "2026-03-01 10:02:00 +08:00" in row and "2026-03-01 11:40:00 +08:00" in row
        assert "CAM-07、CAM-08、ROOM-1" in row
        refused = b.post(f"/cases/{case['id']}/actions", data={**form, "start": "2026-03-01T12:00", "end": "2026-03-01T11:00"})
        assert refused.status_code == 422 and "结束时间须晚于开始时间" in refused.text and "invalid_window" in refused.text
    with stack.client(officer) as c:
        [action] = c.get(f"/api/v1/cases/{case['id']}/actions").json()
    assert datetime.fromisoformat(action["start"]) == datetime(2026, 3, 1, 2, 2, tzinfo=timezone.utc)
    assert datetime.fromisoformat(action["end"]) == datetime(2026, 3, 1, 3, 40, tzinfo=timezone.utc)
    assert action["devices"] == ["CAM-07", "CAM-08", "ROOM-1"] and action["kind"] == "seizure"
    with _browser(stack, lang="zh") as b:
        sign_in(b, stack.user(role="reviewer", unit="unit-a"))
        page = b.get(f"/cases/{case['id']}").text
        assert 'data-testid="action-row"' in page and 'data-testid="action-form"' not in page


ENFORCEMENT_KINDS = {"inspection": ("现场检查", "inspection"), "seizure": ("查封扣押", "seizure"),
                     "interview": ("询问", "interview"), "remote_inspection": ("远程勘验", "remote inspection")}
"""The kinds of action the case page offers, and their names in Chinese and English."""


def test_an_actions_kind_is_named_wherever_the_case_page_shows_it(stack, officer, case):
    """An enforcement action's kind is stored as a code (``seizure``): its custody entry's
    details showed it as a machine code (``seizure`` in a Chinese page), and the gap it leaves
    when no recording covers it read 执法行为“remote_inspection（…）”的时段未被…覆盖, the timeline's
    bar the same. Recorded once of each kind, with a device that recorded nothing, the case page
    names each kind in the reader's language in the custody view, the gaps and the timeline;
    a kind typed otherwise (through the API) is shown as typed."""
    from tests.api.test_continuity_api import settled

    device = f"CAM-{uuid.uuid4().hex[:6]}"
    with stack.client(officer) as c:
        for n, kind in enumerate([*ENFORCEMENT_KINDS, "夜间巡查"]):
            r = c.post(f"/api/v1/cases/{case['id']}/actions", json={
                "kind": kind, "start": f"2026-03-01T1{n}:00:00+08:00", "end": f"2026-03-01T1{n}:30:00+08:00",
                "devices": [device], "description": "现场" if kind == "seizure" else None})
            assert r.status_code == 201, r.text
        report = settled(c, case["id"])
    assert len([g for g in report["gaps"] if g["level"] == "action_window"]) == 5, report["gaps"]
    reviewer = stack.user(role="reviewer", unit="unit-a")
    for lang, at in (("zh", 0), ("en", 1)):
        with _browser(stack, lang=lang) as b:
            sign_in(b, reviewer)
            page = b.get(f"/cases/{case['id']}").text
            custody = b.get(f"/cases/{case['id']}/custody", params={"action": "action_recorded"}).text
        rows = re.findall(r'<tr data-testid="custody-row" data-action="action_recorded">.*?</tr>', custody, re.S)
        assert len(rows) == 5 and not any("<code>" in row for row in rows), rows
        # What a reader sees or hears: text, and the titles and labels of the timeline's bars;
        # not the values the forms send.
        shown = html.unescape(re.sub(r'\s(?:value|data-[\w-]+|hx-[\w-]+|href|id|name|for|class)="[^"]*"', "", page))
        for code, names in ENFORCEMENT_KINDS.items():
            if code != names[at]:
                assert not re.search(rf"(?<![\w/]){code}(?![\w/])", shown), (lang, code, re.findall(rf".{{60}}{code}.{{30}}", shown)[:3])
            assert names[at] in html.unescape(" ".join(rows)), (lang, names[at])
        assert "夜间巡查" in html.unescape(" ".join(rows))
        gaps = re.search(r'<section[^>]*id="continuity".*?</section>', page, re.S) or re.search(r'id="gaps".*', page, re.S)
        assert ("查封扣押（现场）" if lang == "zh" else "seizure (现场)") in html.unescape(gaps.group(0))
    # An action whose record never gave its window an end keeps the case open, saying why; the
    # kind in that sentence is said too.
    from api.pages.i18n import sentence
    from archive.continuity.report import GAP_DETAILS
    waiting = GAP_DETAILS.say("action_end", kind="interview", start="2026-03-01 10:00:00 +08:00", why="record_not_signed")
    assert sentence("zh", waiting).startswith("询问（自 2026-03-01 10:00:00 +08:00 起）"), sentence("zh", waiting)


def test_why_a_document_was_not_read_or_sealed_as_a_pdf_is_said_in_chinese(stack, officer, case):
    """A PDF that cannot be read (truncated, malformed) is kept and sealed; its custody entries
    said why its text was not read and why it got no PAdES copy in English on a Chinese page
    (错误: original.pdf: unreadable PDF: …, PAdES 问题: PAdES sealing failed: the source is not a
    PDF pyHanko can update: …). Both are now said in the reader's language; only the reading
    library's own words stay as they are."""
    data = b"%PDF-1.4 truncated " + uuid.uuid4().hex.encode()
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", content=data, params={
            "kind": "document", "filename": "现场检查笔录.pdf", "sha256": hashlib.sha256(data).hexdigest()}).json()
    stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")
    with _browser(stack, lang="zh") as b:
        sign_in(b, officer)
        custody = html.unescape(b.get(f"/cases/{case['id']}/custody").text)
    assert "无法读取的 PDF：" in custody and "PAdES 签章失败：源文件不是 pyHanko 能够追加签章的 PDF：" in custody, custody
    assert "unreadable PDF" not in custody and "PAdES sealing failed" not in custody


def test_an_actions_uncovered_window_is_red_on_its_devices_timeline(stack, officer, case, tmp_path):
    """A seizure from 10:00 to 10:02 that camera A recorded only for its first 30 s, and camera
    B not at all: the gaps table listed the uncovered window, but the timeline (蓝色为录像，红色为
    中断) drew camera A's 30 s in blue and nothing red, and no track for camera B, since the
    window's gap belongs to no one device. It is now drawn red on the track of each device the
    action assigned, named by its cause."""
    from tests.api.test_continuity_api import T0, _ffmpeg, iso, settled, upload_clip

    clip = tmp_path / "clip30.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=1:duration=30", "-c:v", "libx264", "-preset", "ultrafast",
            str(clip))
    cam_a, cam_b = f"CAM-A-{uuid.uuid4().hex[:6]}", f"CAM-B-{uuid.uuid4().hex[:6]}"
    with stack.client(officer) as c:
        upload_clip(c, case["id"], clip, device_id=cam_a, start=T0)
        r = c.post(f"/api/v1/cases/{case['id']}/actions", json={
            "kind": "seizure", "start": iso(T0), "end": iso(T0 + timedelta(minutes=2)), "devices": [cam_a, cam_b]})
        assert r.status_code == 201, r.text
        assert [g["level"] for g in settled(c, case["id"])["gaps"]] == ["action_window"]
    with _browser(stack, lang="zh") as b:
        sign_in(b, stack.user(role="reviewer", unit="unit-a"))
        page = b.get(f"/cases/{case['id']}").text
    timeline = re.search(r'<section id="timeline".*?</section>', page, re.S).group(0)
    tracks = dict(re.findall(r'<span class="device">([^<]+)</span>(.*?)</div></div>', timeline, re.S))
    assert set(tracks) == {cam_a, cam_b}, timeline
    assert 'data-testid="timeline-rec"' in tracks[cam_a] and 'data-testid="timeline-rec"' not in tracks[cam_b]
    for track in tracks.values():
        [red] = re.findall(r'<span class="gap"[^>]*data-testid="timeline-gap-span"[^>]*>', track)
        assert "查封扣押" in html.unescape(red), red


def test_a_reviewer_exports_chosen_items_from_the_case_page(stack, officer, case):
    """A court asking for one recording of a case could be given a selection only through the
    API: the case page's export form exported the whole case, and no list of exports said which
    was which. The form now offers the items of the evidence list's page to choose from, and the
    case page, the queue of exports to approve and the court page say whether an export is the
    whole case or how many items."""
    with stack.client(officer) as c:
        first, second = (c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": name},
                                content=name.encode() + uuid.uuid4().hex.encode()).json()
                         for name in ("询问录音.m4a", "现场照片.jpg"))
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    path = f"/cases/{case['id']}"
    with _browser(stack, lang="zh") as b:
        sign_in(b, stack.user(role="reviewer", unit="unit-a"))
        page = b.get(path).text
        assert page.count('data-testid="export-item"') == 2 and "询问录音.m4a" in page
        r = b.post(f"{path}/exports", data={"csrf_token": csrf_of(page), "recipient": court_name, "items": [first["id"]]})
        assert r.status_code == 303, r.text[:500]
        r = b.post(f"{path}/exports", data={"csrf_token": csrf_of(page), "recipient": court_name})
        assert r.status_code == 303, r.text[:500]
        listed = b.get(f"{path}/exports").text
    with stack.client(court) as c:
        exports = {e["items"] and tuple(e["items"]) for e in c.get("/api/v1/exports").json() if e["case_id"] == case["id"]}
    assert exports == {(first["id"],), None}, exports
    scopes = re.findall(r'data-testid="export-scope">([^<]+)<', listed)
    assert sorted(scopes) == ["全案", "所选 1 件证据"], scopes
    with _browser(stack, lang="zh") as b:
        sign_in(b, court)
        assert "所选 1 件证据" in b.get("/court").text
    with _browser(stack, lang="zh") as b:  # the second reviewer approving it sees what it holds
        sign_in(b, stack.user(role="reviewer", unit="unit-a"))
        queue = b.get("/queue").text
    rows = re.findall(rf'<tr data-testid="queue-export"[^>]*><td><a href="/cases/{case["id"]}#exports">.*?</tr>', queue, re.S)
    assert sorted(re.search(r'data-testid="export-scope">([^<]+)<', r).group(1) for r in rows) == ["全案", "所选 1 件证据"]
    assert second["id"] not in exports


def test_a_verification_receipt_names_each_item_by_its_file(stack, officer, case):
    """A case's verification receipt listed each item it checked by its id (证据
    5fc3d50b-fdfd-…): a reviewer could not tell which recording passed or is pending. Each item
    is now named by its file name, linked to its row (the items page holding it)."""
    from tests.archive.test_case_verification import _verify_through_api

    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "询问笔录.txt"},
                      content=b"record " + uuid.uuid4().hex.encode()).json()
    reviewer = stack.user(role="reviewer", unit="unit-a")
    stack.wait_item(reviewer, item["id"], lambda i: i["seal_status"] == "sealed")
    _verify_through_api(stack, reviewer, case["id"])
    with _browser(stack, lang="zh") as b:
        sign_in(b, reviewer)
        receipt = re.search(r'data-testid="receipt".*?</details>', b.get(f"/cases/{case['id']}").text, re.S).group(0)
    row = re.search(r'<tr><td>证据</td>.*?</tr>', receipt, re.S).group(0)
    link = re.search(r'<a href="([^"]+)"[^>]*data-testid="receipt-item">([^<]+)</a>', row)
    assert link and link.groups() == (f"?item={item['id']}#item-{item['id']}", "询问笔录.txt"), row


def test_the_court_page_tells_a_windows_clerk_how_to_verify(stack):
    """The verification commands were for Linux or macOS only (vv/bin/pip, sha256sum, # comments):
    typed into a court clerk's Windows Command Prompt, none of them runs. The page now gives the
    same steps for Windows too (vv\\Scripts, certutil, REM), the package named as the link names it."""
    with _browser(stack, lang="zh") as b:
        sign_in(b, stack.user(role="court", unit="court"))
        page = html.unescape(b.get("/court").text)
    package = re.search(r"下载离线核验工具（(evidence-verifier-[\d.]+\.tar\.gz)）", page).group(1)
    windows = re.search(r'<pre class="commands" data-testid="verify-commands-windows"[^>]*>(.*?)</pre>', page, re.S).group(1)
    lines = windows.splitlines()
    assert [line for line in lines if not line.startswith("REM ")] == [
        "py -m venv vv", f"vv\\Scripts\\pip install {package}", "vv\\Scripts\\evidence-verify EXPORT.zip --trust ROOT.pem",
        "certutil -hashfile EXPORT.zip SHA256"], lines
    assert "Windows（命令提示符 cmd" in page and "Linux 或 macOS" in page
