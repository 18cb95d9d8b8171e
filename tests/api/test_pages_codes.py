"""What a reader sees of the archive's machine values: gap causes, custody details, error codes,
background work, certificate kinds and the figures' keys are said in the page's language, a
raw code only ever inside an element that marks it as one (``<code>``)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import string
import time
import uuid
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import httpx
import pytest

import archive
from api.pages.i18n import SENTENCES, details_text, error_text, move_reason, processing_reason, receipt_detail
from archive.i18n import gap_cause, said
from archive.i18n.messages import MESSAGES
from archive.continuity.analysis import CAUSES, NO_DEVICES, UNPLACED_NOTE
from archive.cases.receipts import CHECK_DETAILS
from archive.cases.stages import MOVE_REASONS
from archive.cases.verification import ITEM_PENDING
from archive.evidence.fixity import ORIGINAL_PROBLEMS, STORE_FAULTS
from archive.evidence.items import READ_PURPOSES
from archive.storage.protocol import STORE_OPERATIONS
from archive.wording import Sentences
from archive.work import STEP_REASONS
from tests.capture.support import continuity
from tests.tools import CLIENT_TLS, sign_in

SNAKE = re.compile(r"[a-z]+(?:_[a-z]+)+")
LITERALS = {"True", "False", "None"}
SAMPLE = {"seconds": "5.0", "at": "00:00:03.0", "stream": "data", "item": "item-1", "previous": "item-0",
          "reason": "moov atom not found", "format": "jpeg_pipe",
          "action": "seizure (front door)", "devices": "CAM-1, CAM-2"}


class _Visible(HTMLParser):
    """The text a person reads (and what tooltips and screen readers say), without what sits
    inside elements marking machine codes, scripts, styles and templates."""

    HIDDEN = {"code", "script", "style", "template"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.depth += 1
        elif not self.depth:
            for name, value in attrs:
                if name in ("title", "aria-label", "placeholder", "alt") and value:
                    self.handle_data(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.words += re.findall(r"[A-Za-z_]+", data)


def raw_codes(page: str, *, literals: set[str] = LITERALS) -> list[str]:
    """Words of the visible text that are raw snake_case codes or Python literals."""
    parser = _Visible()
    parser.feed(page)
    return sorted({w for w in parser.words if SNAKE.fullmatch(w) or w in literals})


def test_the_scan_sees_raw_codes_but_not_marked_ones():
    page = '<p title="gap_unexplained">ok</p><td>False</td><code>not_found</code><span>已接受</span>'
    assert raw_codes(page) == ["False", "gap_unexplained"]
    assert raw_codes("<p>无 <code>csrf_failed</code></p>") == []


@pytest.mark.parametrize("cause", sorted(CAUSES))
def test_every_gap_cause_is_said_in_chinese(cause):
    stored = CAUSES[cause].format(**SAMPLE)
    assert f"gap_cause.{cause}" in MESSAGES
    chinese = gap_cause("zh", stored)
    assert chinese != stored and re.search(r"[\u4e00-\u9fff]", chinese), chinese
    assert not {"recording", "clip", "window", "stops", "covered"} & set(re.findall(r"[a-z]+", chinese)), chinese
    assert gap_cause("en", stored) == stored  # English says what the analysis wrote


def test_gap_cause_keeps_its_values_and_notes_and_falls_back_to_the_text():
    unplaced = CAUSES["paused"].format(**SAMPLE) + UNPLACED_NOTE
    assert gap_cause("zh", unplaced) == "录制暂停 5.0 秒，位于文件第 00:00:03.0 处" + MESSAGES["gap_cause.unplaced"]["zh"]
    nobody = CAUSES["action_window"].format(action="seizure", devices=NO_DEVICES)
    assert "（未指定）" in gap_cause("zh", nobody) and NO_DEVICES not in gap_cause("zh", nobody)
    assert gap_cause("zh", "a cause worded by an older analysis") == "a cause worded by an older analysis"


def _sentence_tables() -> list[tuple[str, Sentences]]:
    """Every table of sentences the archive stores in English (module-level, in any module of
    ``archive`` but its migrations), so a new table is checked without being listed here."""
    found: dict[int, tuple[str, Sentences]] = {}
    for module in pkgutil.walk_packages(archive.__path__, "archive."):
        if not module.name.startswith("archive.migrations"):
            for name, value in vars(importlib.import_module(module.name)).items():
                if isinstance(value, Sentences):
                    found.setdefault(id(value), (f"{module.name}.{name}", value))
    return sorted(found.values(), key=lambda pair: pair[0])


STORED_VALUES = {
    **SAMPLE, "checkpoint": "closing", "opinion": "证据不足", "role": "proxy", "detail": "store unreachable",
    "attempts": "5", "version": "v-1", "current": "v-2", "size": "198", "algorithm": "sm3",
    "reason": "the recorded version is missing from the store", "received": "1024", "found": "ab" * 32,
    "sha256": "ab" * 32, "root": "cd" * 32, "sealed": "True", "pending": "seal (pending)", "count": "4",
    "gaps": "5", "accepted": "0", "unresolved": "5", "status": "pending", "seq": "7",
    "fault": "sha256", "key": "v-1/objects/k1", "recorded_size": "1024", "recorded": "cd" * 32, "records": "3",
    "objects": "9", "gap": "g-1", "problem": "the recorded version is missing from the store", "filename": "a.mp4",
    "reasons": "gave up after 5 attempts: store unreachable", "level": "in_file", "device": "CAM-1",
    "start": "2026-03-01T02:00:30Z", "state": "open", "says": "accepted", "told": "open", "total": "12",
    "last": "12", "record": "checkpoint 3 (tree size 12, recorded in ledger entry 13)",
    "before": "checkpoint 2 (tree size 5, recorded in ledger entry 6)", "named": "None", "expected": "None",
    "link": "None", "by_size": "[2, 3]", "by_record": "[3, 2]", "fields": "root_hash", "depth": "2", "index": "1",
    "first": "5", "next": "9", "held": "11", "claimed": "12", "what": "case archive records", "vault": "v-1",
    "faults": "v-1/k: missing from the store", "node": "stored Merkle node (level 2, index 1: entries 5..8)",
    "stated": "ab" * 32, "stated_version": "None", "roles": "['manifest']", "sealed_size": "12",
    "sealed_root": "ef" * 32, "previous": "2", "recorded_action": "checkpoint_sealed",
    "items": "i-1 (a.mp4), i-2 (b.pdf)", "outstanding": "probe (item i-1)",
    "owner": "worker-host:4242:139872", "tool": "ffprobe", "limit": "300",
    "stage": "filed", "stages": "enforcement, referred, service", "subject": "i-1", "export": "x-1",
    "export_status": "building", "needed": "3", "review": "r-1",
    "error": "KeyError", "member": "'clips/FILE0001.MP4'",
    "path": "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "failure": "ffmpeg exited with status 1: moov atom not found",
    "operation": "read v-1/objects/k1", "code": "NoSuchKey", "source": "pkcs11",
    "words": "access_denied End-User aborted interaction", "claim": "'preferred_username'", "subject": "'dir.nobody'",
    "name": "li.wei", "host": "shop.example", "ip": "10.20.30.40", "port": "8000",
    "archive": "a-1", "archives": "1", "end": "2026-03-01T02:01:00.000000Z", "kept_start": "2026-03-01T02:00:40.000000Z",
    "kept_end": "2026-03-01T02:01:00.000000Z", "kept_seconds": "20.0", "kept_device": "CAM-1",
    "tree_size": "99", "time": "2026-03-01T02:01:00.000000Z", "kind": "interview",
    "why": "its record i-1 (record.pdf) has no signing time after the action's start",
}
"""A value of each placeholder, as it is stored."""


def _placeholders(text: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(text) if name}


@pytest.mark.parametrize(("table", "sentence"), [
    pytest.param(table, sentence, id=f"{name}:{sentence}")
    for name, table in _sentence_tables() for sentence in table.templates])
def test_every_sentence_the_archive_stores_is_said_in_chinese(table, sentence):
    """A sentence a page reads back (a stage move's or a step's reason, a fault, a receipt's
    detail) never reaches a Chinese page untranslated: its message exists in both languages
    with the template's placeholders, and the stored text reads back as itself."""
    key = f"{table.family}.{sentence}"
    assert key in MESSAGES, f"{key} has no message: a page would show the English"
    names = table.placeholders(sentence)
    assert _placeholders(MESSAGES[key]["zh"]) == _placeholders(MESSAGES[key]["en"]) == names
    values = {name: STORED_VALUES[name] for name in names}
    stored = table.say(sentence, **values)
    assert table.read(stored) == (sentence, values)
    chinese = said("zh", stored, table)
    assert chinese is not None and chinese != stored


def test_the_tables_the_pages_read_are_all_checked():
    checked = {id(table) for _name, table in _sentence_tables()}
    read = (MOVE_REASONS, READ_PURPOSES, STEP_REASONS, STORE_FAULTS, ORIGINAL_PROBLEMS, CHECK_DETAILS, ITEM_PENDING)
    assert all(id(table) in checked for table in read)


def test_every_table_the_archive_stores_is_read_by_the_pages():
    """A new table is said on the pages once it is written: the pages try every table but the gap
    causes (said with the gap), what an item waits for (said inside a check's detail) and what a
    store was doing (said inside a store's error)."""
    read = {id(table) for table in SENTENCES} | {id(ITEM_PENDING), id(STORE_OPERATIONS)}
    unread = [name for name, table in _sentence_tables() if id(table) not in read and table.family != "gap_cause"]
    assert unread == []


def test_custody_details_say_yes_no_and_label_keys_and_codes():
    details = {"accepted": False, "reopened": True, "reason": None, "role": "officer", "to": "legal_review",
               "changes": {"active": [True, False], "unit": [None, "unit-b"]}, "future_key": "some text"}
    zh = str(details_text("zh", details.items()))
    assert "已接受: 否" in zh and "重新启动: 是" in zh and "角色: 执法人员" in zh and "变更为: 法制审核" in zh
    assert "(启用: 是, 否, 单位: —, unit-b)" in zh
    assert "理由" not in zh  # nothing to say: left out, as before
    assert "<code>future_key</code>: some text" in zh
    assert raw_codes(zh) == []
    en = str(details_text("en", details.items()))
    assert "accepted: no" in en and "reopened: yes" in en and "to: legal review" in en
    assert str(details_text("zh", [("level", "new_level")])) == "层级: <code>new_level</code>"
    assert "<script>" not in str(details_text("zh", [("note", "<script>")]))
    # A packet scan's and a derived object's entries, as the pipeline writes them.
    scanned = str(details_text("zh", [("stream", "video"), ("packet_count", 125), ("media_duration", 5.0155),
                                      ("role", "proxy")]))
    assert scanned == "媒体流: 视频, 数据包数: 125, 媒体时长（秒）: 5.0155, 角色: 播放副本", scanned
    assert raw_codes(scanned) == []
    # A closing's stage move, an analysis, a gap inside a file, a retention class changed.
    closing = str(details_text("zh", [("ledger_range", [15, 101]), ("checkpoint_tree_size", 101),
                                      ("analysis_version", 2), ("gap", {"start_offset": 1.5, "end_offset": 9.0,
                                                                        "duration": 7.5}),
                                      ("retention_class", "fixed_10y"), ("previous", "permanent")]))
    assert "<code>" not in closing and raw_codes(closing) == [], closing
    assert "监管日志序号范围: 15, 101" in closing and "原值: 永久" in closing, closing


def test_error_text_by_status_and_code_with_fallbacks():
    known = error_text("zh", error_code="case_not_found", status=404, message="no case x")
    assert (known.heading, known.code) == ("未找到", "case_not_found") and "案件不存在" in known.explanation
    unknown = error_text("zh", error_code="brand_new_code", status=418, message="I'm a teapot")
    assert unknown.heading == "出错了" and unknown.explanation == "" and unknown.code == "brand_new_code"
    english = error_text("en", error_code="case_not_found", status=404, message="no case x")
    assert (english.heading, english.explanation) == ("Not found", "no case x")


@pytest.mark.parametrize("code", [
    "invalid_window", "invalid_record_item", "timezone_required", "invalid_comment", "invalid_opinion",
    "invalid_document_role", "invalid_court_reference", "invalid_legal_basis", "case_not_decided",
    "handler_not_officer", "reviewer_cannot_handle", "export_not_approved",
])
def test_a_refusal_a_page_form_can_meet_is_explained_in_chinese(code):
    """These refusals of the pages' forms (an action's window, a gap's comment, a review's
    opinion, a court's request, a stage document, an outcome, a handler) showed a Chinese reader
    only that the input was not accepted, and the code."""
    said = error_text("zh", error_code=code, status=422, message="whatever the archive said")
    assert said.explanation and re.search(r"[\u4e00-\u9fff]", said.explanation), code


def test_error_text_in_chinese_gives_the_particulars_of_our_own_messages():
    """A refused stage move names the reviews it lacks (the gates joined, a reviewer's opinion as
    written); a message the catalogue cannot read back stays off the Chinese page."""
    two = "the latest committee review (r-1) returned the case: 证据不足; 补充调查; the case has no approval review"
    shut = error_text("zh", error_code="stage_gate", status=409, message=two)
    assert shut.explanation == MESSAGES["error_code.stage_gate"]["zh"]
    assert shut.particulars == "最近一次支委会审核（r-1）退回了本案：证据不足; 补充调查；本案没有呈批审核"
    assert error_text("zh", error_code="stage_gate", status=409,
                      message="the case has no filing review").particulars == "本案没有立案审核"
    assert error_text("zh", error_code="case_not_found", status=404, message="no case x").particulars == ""
    english = error_text("en", error_code="stage_gate", status=409, message=two)
    assert (english.explanation, english.particulars) == (two, "")


def test_sso_refusals_of_ours_are_said_and_any_other_reason_is_marked_as_written():
    from starlette.requests import Request

    from api.pages.signin import _sso_refusal

    def page(lang: str, reason: str) -> str:
        cookie = f"evidence_lang={lang}".encode()
        return _sso_refusal(Request({"type": "http", "headers": [(b"cookie", cookie)], "query_string": b""}), reason)

    assert page("zh", "user li.wei is disabled") == "统一身份认证被拒绝：用户 li.wei 已停用"
    assert page("zh", "the provider refused: login_required") == \
        "统一身份认证被拒绝：认证服务拒绝了此次登录，认证服务的原话为：“login_required”"
    assert page("zh", "Access denied by policy") == "统一身份认证被拒绝。原因（原文，未翻译）：Access denied by policy"
    assert page("en", "the provider refused: login_required") == \
        "Single sign-on was refused: the provider refused: login_required"
    assert page("en", "Access denied by policy") == "Single sign-on was refused: Access denied by policy"


def test_processing_reasons_are_translated_around_their_detail():
    assert processing_reason("zh", "gave up after 5 attempts: store unreachable") == "尝试 5 次后放弃：store unreachable"
    assert processing_reason("zh", "not run: an earlier step crashed (KeyError)") == "未运行：之前的步骤出错（KeyError）"
    assert processing_reason("zh", "unprobeable: moov atom not found") == "媒体无法解析：moov atom not found"
    assert processing_reason("zh", "internal error (KeyError); logged") == "内部错误（KeyError），已记入日志"
    assert processing_reason("zh", "packet scan failed: ffprobe timed out") == "数据包扫描失败：ffprobe timed out"
    assert processing_reason("zh", "store unreachable; retrying") == "store unreachable；将重试"
    assert processing_reason("zh", "member 'a.mp4' could not be registered: too large") == \
        "成员文件 'a.mp4' 未能登记：too large"
    assert processing_reason("zh", "unreadable document: empty file") == "文档无法读取：空文件"
    assert processing_reason("zh", "invalid bundle: manifest.json is missing") == "采集包无效：manifest.json is missing"
    assert processing_reason("zh", "something else") == "something else"


def test_derive_failures_are_said_one_by_one():
    """A failed derive step's reason (one failure per derived file, the tool's message as written)
    is said failure by failure; each role the step makes reads back."""
    from archive.cases.receipts import PART_SEPARATOR
    from archive.work import DERIVE_SEPARATOR, DERIVED_ROLES
    from ingest.pipeline import _DERIVATIONS

    assert DERIVE_SEPARATOR == PART_SEPARATOR and DERIVED_ROLES == tuple(role for role, *_ in _DERIVATIONS)
    assert processing_reason("zh", "thumbnail: ffmpeg produced no thumbnail strip; proxy: cannot read a.mp4: bad") == \
        "缩略图未能生成：ffmpeg produced no thumbnail strip；播放副本未能生成：cannot read a.mp4: bad"
    assert processing_reason("zh", "proxy: x; y") == "播放副本未能生成：x; y"
    assert processing_reason("zh", "no evidence item i-1") == "证据 i-1 不存在"


def test_stage_move_reasons_of_the_archive_are_translated_and_peoples_kept():
    closed = "closed: every gate held; case archive record sealed"
    assert move_reason("zh", closed) == "结案：各项结案条件均已满足，案件电子档案已签章封存"
    assert move_reason("en", closed) == closed
    assert move_reason("zh", "returned by the closing review: 证据不足") == "被结案审核退回：证据不足"
    assert move_reason("zh", "证据已补齐") == "证据已补齐"
    zh = str(details_text("zh", [("reason", closed), ("via", "signed_link"), ("purpose", "seal:cades"),
                                 ("pending_reasons", ["gap_unexplained", "processing"])]))
    assert zh == "理由: 结案：各项结案条件均已满足，案件电子档案已签章封存, 途径: 限时下载链接, 用途: 签章（CAdES 签章）, " \
                 "待完成原因: 中断未说明, 处理中"
    assert raw_codes(str(details_text("en", [("purpose", "derived:proxy"), ("via", "token")]))) == []


def test_receipt_details_are_said_in_words_with_yes_no():
    sha = "ab" * 32
    assert receipt_detail("zh", f"sha256 {sha}; sealed True; in checkpoint 198") == \
        f"SHA-256 {sha}；已签章：是；已包含于日志条数为 198 的已签章检查点"
    assert receipt_detail("en", f"sha256 {sha}; sealed False; pending: seal (pending), checkpoint covering custody "
                                "entry 7") == f"SHA-256 {sha}; sealed: no; pending: its seal (pending), a checkpoint " \
                                             "covering custody entry 7"
    assert receipt_detail("zh", "4 checkpoints; latest tree size 198") == "共 4 个检查点；最新检查点日志条数 198"
    assert receipt_detail("zh", "5 gaps, 0 accepted, 5 unresolved") == "中断 5 处，已接受 0 处，未解决 5 处"
    assert receipt_detail("zh", f"256 entries, root {sha}") == f"共 256 条记录，根哈希 {sha}"
    missing = "stored original of item i-1 cannot be read: the recorded version is missing from the store"
    assert receipt_detail("zh", missing) == "证据 i-1 的存储原件无法读取：存储中已没有所记录的版本"
    # An item's failure in words, the underlying tool's message as written.
    assert receipt_detail("zh", "item i-1: manifest seal fails: bad; odd") == "证据 i-1：清单签章验证失败：bad; odd"
    assert receipt_detail("zh", "item i-1 is fine; odd") == "item i-1 is fine; odd"  # not ours: as written


def _browser(stack, lang: str) -> httpx.Client:
    return httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60,
                        cookies={"evidence_lang": lang})


def test_main_pages_in_chinese_show_no_raw_codes(stack, officer, case):
    """Each main page, in Chinese (and English), with a gap of a known cause, a rejected
    explanation (a custody entry whose details hold a boolean), a processed item read by the
    reviewer, a verification receipt (incomplete: the gap), closing gates (one about the gap),
    failed background work and the year's figures: no raw snake_case word or Python literal shows."""
    from sqlalchemy import delete

    from archive.models import Work, utcnow

    start = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
    camera = f"CAM-{uuid.uuid4().hex[:8]}"
    reviewer, admin = stack.user(role="reviewer", unit="unit-a"), stack.user(role="admin", unit="unit-a")
    with stack.client(officer) as c, stack.client(reviewer) as rv:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=uuid.uuid4().bytes * 100).json()
        action = {"kind": "seizure", "start": start.isoformat(), "end": (start + timedelta(minutes=5)).isoformat(),
                  "devices": [camera]}
        assert c.post(f"/api/v1/cases/{case['id']}/actions", json=action).status_code == 201
        gap = continuity(stack, officer, case)["gaps"][0]
        assert gap["cause"] == CAUSES["action_window"].format(action="seizure", devices=camera)
        assert c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "电池耗尽"}).status_code == 200
        assert rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": False, "comment": "哪块电池？"}).status_code == 200
    stack.wait_item(reviewer, item["id"], lambda i: i["seal_status"] == "sealed")
    with stack.client(reviewer) as rv:
        assert rv.get(f"/api/v1/evidence/{item['id']}/content").status_code == 200  # purpose: content
        receipt = rv.post(f"/api/v1/cases/{case['id']}/verify").json()["id"]
        deadline = time.monotonic() + 120
        while (found := next(r for r in rv.get(f"/api/v1/cases/{case['id']}/verifications").json()
                             if r["id"] == receipt))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, found
            time.sleep(0.3)
    assert found["status"] == "incomplete", found  # the rejected explanation keeps it from passing
    assert any(re.search(r"; sealed True\b", c["detail"] or "") for c in found["checks"]), found["checks"]
    subject = str(uuid.uuid4())
    with stack.services.db.session() as s:
        s.add(Work(task="evidence.process_item", subject=subject, state="failed", attempts=5, due_at=utcnow(),
                   last_error="probe gave up: the store was unreachable"))
    def shown(answer):  # type: ignore[no-untyped-def]
        assert answer.status_code == 200, (answer.url, answer.status_code, answer.text[:300])
        return answer.text

    try:
        pages = {}
        for lang in ("zh", "en"):
            with _browser(stack, lang) as b:
                sign_in(b, reviewer)
                pages[lang, "case"] = shown(b.get(f"/cases/{case['id']}"))
                pages[lang, "cases"] = shown(b.get("/cases"))
                pages[lang, "queue"] = shown(b.get("/queue"))
                pages[lang, "figures"] = shown(b.get("/figures"))
                missing = b.get(f"/cases/{uuid.uuid4()}")
                assert missing.status_code == 404
                pages[lang, "404"] = missing.text
                forbidden = b.get("/court")
                assert forbidden.status_code == 403
                pages[lang, "403"] = forbidden.text
            with _browser(stack, lang) as b:
                sign_in(b, admin)
                pages[lang, "admin"] = shown(b.get("/admin"))
            with _browser(stack, lang) as b:
                sign_in(b, stack.user(role="court", unit="court-1"))
                pages[lang, "court"] = shown(b.get("/court"))
    finally:
        with stack.services.db.session() as s:
            s.execute(delete(Work).where(Work.subject == subject))

    case_page = pages["zh", "case"]
    assert f"执法行为“查封扣押”的时段未被设备 {camera} 的录像覆盖" in case_page
    assert "not covered by devices" not in case_page
    custody = re.findall(r'data-action="gap_reviewed">(.*?)</tr>', case_page, re.DOTALL)
    assert custody and "已接受: 否" in custody[0], custody
    assert "<h1 data-testid=\"error-heading\">未找到</h1>" in pages["zh", "404"]
    assert "<h1 data-testid=\"error-heading\">无权进行此操作</h1>" in pages["zh", "403"]
    assert '<code data-testid="error-code">forbidden_role</code>' in pages["zh", "403"] or \
        '<code data-testid="error-code">forbidden</code>' in pages["zh", "403"]
    assert "证据处理" in pages["zh", "admin"] and "电子签章证书" in pages["zh", "admin"]
    assert ">stuck<" not in pages["zh", "admin"]
    assert "法制审核" in pages["zh", "figures"] and ">legal_review<" not in pages["zh", "figures"]
    assert "accepted: no" in pages["en", "case"] and "legal review" in pages["en", "figures"]
    # The receipt in words: yes, not True; counts and hashes in the reader's language.
    receipts = re.findall(r'data-testid="receipt".*?</details>', case_page, re.DOTALL)
    assert receipts and "已签章：是" in receipts[0] and "中断 1 处，已接受 0 处，未解决 1 处" in receipts[0], receipts
    assert re.search(r"共 \d+ 条记录，根哈希 [0-9a-f]{64}", receipts[0]) and "共 " in receipts[0], receipts
    assert "sealed: yes" in pages["en", "case"] and "True" not in pages["en", "case"]
    assert "用途: 原件内容" in case_page and "待完成原因: 中断说明被退回" in case_page
    # The gate about the gap says which gap: its kind and local span (and the cause, as it has no device).
    gate = re.findall(r'data-code="gap_explanation_rejected">(.*?)</li>', case_page)
    assert gate and "执法行为时段：2026-03-01 10:00:00.0 +08:00 至" in gate[0] and camera in gate[0], gate
    gate = re.findall(r'data-code="gap_explanation_rejected">(.*?)</li>', pages["en", "case"])
    assert gate and "action window: 2026-03-01 10:00:00.0 +08:00 to" in gate[0] and "Z" not in gate[0], gate
    found = {key: raw_codes(page, literals=LITERALS if key[0] == "zh" else {"True", "False"})
             for key, page in pages.items()}
    assert {key: words for key, words in found.items() if words} == {}
