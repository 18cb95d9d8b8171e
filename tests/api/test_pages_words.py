"""What a reader of the pages sees of the sentences the archive stores: the clips a gap's cause
names, by their file names; faults, checks and failures in the page's language."""

from __future__ import annotations

import io
import re
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from archive.continuity.analysis import CAUSES
from archive.i18n import gap_cause
from tests.capture.support import continuity
from tests.conftest import receive_directly
from tests.tools import CLIENT_TLS, sign_in

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _page(stack, token: str, path: str, lang: str) -> str:
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60, cookies={"evidence_lang": lang}) as b:
        sign_in(b, token)
        r = b.get(path)
        assert r.status_code == 200, r.text
        return r.text


def _item_with_steps(stack, officer: str, case: dict, steps: dict[str, tuple[str, str]]) -> str:
    """A new item of ``case`` whose ``steps`` (name -> state and reason) say what a worker would
    have kept, written once its worker is done with it (its seal step, the last, recorded) so that
    nothing writes over them; its id."""
    from archive.evidence import items as evidence
    from archive.models import EvidenceItem

    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=uuid.uuid4().bytes * 100).json()
    stack.wait_item(officer, item["id"], lambda i: (i["processing"] or {}).get("seal", {}).get("state") == "done")
    with stack.services.db.session() as s:
        row = s.get(EvidenceItem, item["id"])
        for name, (state, reason) in steps.items():
            evidence.set_task_state(row, name, state, reason)
    return item["id"]


def _clip(directory: Path, name: str, seconds: int) -> Path:
    path = directory / name
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=160x90:rate=1:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-metadata", f"comment={uuid.uuid4().hex}", str(path)], check=True)
    return path


def test_a_cause_names_its_clips_by_the_names_given_and_keeps_unknown_ids():
    stored = CAUSES["overlap"].format(item="id-2", previous="id-1", seconds="20.0")
    names = {"id-1": "FILE0001.MP4", "id-2": "FILE0002.MP4"}
    assert gap_cause("zh", stored, clips=names) == \
        "录像 FILE0002.MP4 与同一设备的录像 FILE0001.MP4 重叠 20.0 秒（设备时钟偏差有误，或同一录像上传了两次）"
    assert gap_cause("en", stored, clips=names).startswith("clip FILE0002.MP4 overlaps clip FILE0001.MP4 ")
    assert gap_cause("en", stored) == stored  # the stored English, ids and all, is unchanged
    assert gap_cause("zh", stored, clips={"id-1": "FILE0001.MP4"}).startswith("录像 id-2 与同一设备的录像 FILE0001.MP4")


@pytest.mark.slow
def test_gap_causes_on_the_pages_name_clips_by_file_name_linked_to_their_rows(stack, officer, case, tmp_path):
    cam = f"CAM-{uuid.uuid4().hex[:8]}"
    first, third = _clip(tmp_path, "FILE0001.MP4", 30), _clip(tmp_path, "FILE0003.MP4", 30)
    with stack.client(officer) as c:
        ids = []
        for path, start in ((first, T0), (third, T0 + timedelta(seconds=60))):
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=path.read_bytes(),
                       params={"kind": "bodycam_video", "filename": path.name, "device_id": cam,
                               "recorded_start": start.isoformat()})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    (gap,) = continuity(stack, officer, case)["gaps"]
    assert gap["cause"] == CAUSES["between_segments"].format(previous=ids[0], item=ids[1])  # the API: as stored
    for lang, words in (("zh", "录像 {} 与录像 {} 之间没有录像"), ("en", "no recording between clip {} and clip {}")):
        page = _page(stack, officer, f"/cases/{case['id']}", lang)
        row = re.search(rf'<tr id="gap-{gap["id"]}".*?</tr>', page, re.DOTALL).group(0)
        cause = re.search(r"<td[^>]*>([^<]*<a [^>]*data-testid=\"gap-clip\".*?)</td>", row, re.DOTALL).group(1)
        links = re.findall(r'<a href="#item-([^"]+)" title="([^"]*)" data-testid="gap-clip">([^<]+)</a>', cause)
        assert [(i, n) for i, _about, n in links] == [(ids[0], "FILE0001.MP4"), (ids[1], "FILE0003.MP4")], cause
        assert all(cam in about and "10:0" in about for _i, about, _n in links), links  # device, local start
        assert re.sub(r"<[^>]+>", "", cause) == words.format("FILE0001.MP4", "FILE0003.MP4")
        assert not UUID.search(re.sub(r'href="[^"]*"', "", cause))
        assert f'id="item-{ids[0]}"' in page  # the link's target: the item's row
        # The timeline's gap says the same, in words (a tooltip holds no links).
        assert words.format("FILE0001.MP4", "FILE0003.MP4") in page
    # Explained, the gap waits in a reviewer's queue (which shows no cause, and must not fail for it).
    with stack.client(officer) as c:
        assert c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "换电池"}).status_code == 200
    reviewer = stack.user(role="reviewer", unit="unit-a")
    for lang in ("zh", "en"):
        queue = _page(stack, reviewer, "/queue", lang)
        assert f'data-testid="queue-gap" data-gap-id="{gap["id"]}"' in queue and "换电池" in queue


def _put_back(store, key: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """An object deleted behind the archive's back, written again as it was (on S3: a new
    current version over the delete marker)."""
    if hasattr(store, "client"):
        store.client.put_object(store.bucket, key, io.BytesIO(data), len(data))
    else:
        (store.root / key).write_bytes(data)


ENGLISH = ("stored original of item", "no longer matches", "missing from the store", "cannot be read",
           "vault copies of", "altered: the store holds", "its record says", "gap of", "the custody ledger",
           "object ", "a newer version")
"""Fragments of the English the archive stores for these faults: none may reach a Chinese page."""


@pytest.mark.slow
def test_faults_checks_and_gap_records_are_said_in_chinese_on_the_case_page(stack, officer, case):
    """An insider alters the stored original of an item, deletes a checkpoint's copy in the case's
    vault and marks a gap accepted behind the ledger's back; the reviewer's verification names
    each, and the case page in Chinese says each in Chinese (the receipt, the custody entries),
    none of it in the English stored for the API; the English page still says the English."""
    from archive.models import Case, EvidenceItem
    from tests.archive.test_case_verification import _verify_through_api
    from tests.conftest import run_sql, tamper_stored

    reviewer = stack.user(role="reviewer", unit="unit-a")
    camera = f"CAM-{uuid.uuid4().hex[:8]}"
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=uuid.uuid4().bytes * 100).json()
        action = {"kind": "seizure", "start": T0.isoformat(), "end": (T0 + timedelta(minutes=5)).isoformat(),
                  "devices": [camera]}
        assert c.post(f"/api/v1/cases/{case['id']}/actions", json=action).status_code == 201
    stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")
    (gap,) = continuity(stack, officer, case)["gaps"]
    assert _verify_through_api(stack, reviewer, case["id"])["status"] == "incomplete"  # the vault's copies are written
    store = stack.services.store
    with stack.services.db.session() as s:
        key = s.get(EvidenceItem, item["id"]).storage_key
        vault = s.get(Case, case["id"]).vault.name
    copies = sorted(o.key for o in store.list(f"{vault}/checkpoints/") if o.key.endswith(".json"))
    kept = b"".join(store.read(copies[0]))
    tamper_stored(store, key)
    tamper_stored(store, copies[0], delete=True)
    run_sql(stack.services.db, "UPDATE gaps SET status = 'accepted' WHERE id = :g", {"g": gap["id"]})
    try:
        receipt = _verify_through_api(stack, reviewer, case["id"])
    finally:  # the stack's other tests verify the whole ledger, this vault's checkpoint copies too
        _put_back(store, copies[0], kept)
        run_sql(stack.services.db, "UPDATE gaps SET status = 'open' WHERE id = :g", {"g": gap["id"]})
    assert receipt["status"] == "failed", receipt
    failed = {c["what"]: c["detail"] for c in receipt["checks"] if c["outcome"] == "failed"}
    assert set(failed) >= {"item", "checkpoint_copies", "continuity"}, receipt["checks"]
    assert failed["checkpoint_copies"] == "missing from the store"  # the API: the stored English, as before
    assert failed["continuity"].startswith(f"gap {gap['id']} (action_window gap of 300.0 s on no device from ")
    assert f"stored original of item {item['id']}" in failed["item"] or f"item {item['id']}: " in failed["item"]

    zh, en = (_page(stack, reviewer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    latest = re.search(r'data-testid="receipt".*?</details>', zh, re.DOTALL).group(0)
    assert "存储中已没有该副本" in latest, latest
    assert f"中断 {gap['id']}（执法行为时段中断 300.0 秒，设备 （无设备），自 " in latest, latest
    assert "其记录为“已接受”，监管日志为“待说明”（没有记录这一变更的日志）" in latest, latest
    assert f"证据 {item['id']}" in latest, latest
    custody = re.search(r'id="custody".*', zh, re.DOTALL).group(0)
    verified = re.findall(r'data-action="item_verified">(.*?)</tr>', custody, re.DOTALL)
    assert verified and f"证据 {item['id']}" in verified[0], verified
    for fragment in ENGLISH:
        assert fragment not in latest, (fragment, latest)
        assert fragment not in custody, (fragment, re.findall(rf"<tr[^>]*>(?:(?!</tr>).)*{fragment}.*?</tr>", custody, re.DOTALL))
    english = re.search(r'data-testid="receipt".*?</details>', en, re.DOTALL).group(0)
    assert "missing from the store" in english and "its record says accepted" in english


def test_a_step_that_refused_a_changed_original_says_why_in_chinese(stack, officer, case):
    """A worker's copy of an original that no longer matches what was received derives nothing;
    the step's reason (stored in English, as the API returns it) is said in Chinese on the case
    page, the English page keeps the English."""
    from archive.errors import VerificationFailed
    from archive.evidence import items as evidence
    from archive.models import EvidenceItem
    from ingest.workspace import Workspace
    from tests.conftest import tamper_stored

    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=uuid.uuid4().bytes * 100).json()
    # The seal step's own last write done: the step state written below is not overwritten.
    stack.wait_item(officer, item["id"], lambda i: (i["processing"] or {}).get("seal", {}).get("state") == "done")
    with stack.services.db.session() as s:
        key = s.get(EvidenceItem, item["id"]).storage_key
    tamper_stored(stack.services.store, key)
    with Workspace(db=stack.services.db, store=stack.services.store, settings=stack.settings,
                   item_id=item["id"]) as ws, pytest.raises(VerificationFailed) as refused:
        ws.original()
    stored = refused.value.message
    assert stored.startswith(f"stored original of item {item['id']} ") and stored.endswith("; nothing derived")
    with stack.services.db.session() as s:
        evidence.set_task_state(s.get(EvidenceItem, item["id"]), "probe", "failed", stored)

    zh, en = (_page(stack, officer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    assert f"证据 {item['id']} 的存储原件" in zh and "未从中生成任何内容" in zh
    assert "nothing derived" not in zh and "stored original of item" not in zh
    assert stored in en


def test_an_export_failed_for_want_of_the_certificate_font_says_why_in_chinese(stack, officer, case, tmp_path):
    """An export whose certificate could not be written (the configured font unreadable) shows,
    on the Chinese case page, why in Chinese (the export's error and its custody entry), the
    font library's own message and the setting's name as written."""
    from archive.exports.build import fail_export
    from archive.exports.certificate import _font
    from archive.exports.errors import ExportFailed

    reviewer = stack.user(role="reviewer", unit="unit-a")
    court = f"court-{uuid.uuid4().hex[:6]}"
    stack.user(role="court", unit="court-1", name=court)
    receive_directly(stack, case, b"a scanned record", sm3=False)  # a case with nothing is refused an export
    with stack.client(reviewer) as c:
        export = c.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": court})
        assert export.status_code == 201, export.text
    with pytest.raises(ExportFailed) as failed:
        _font(tmp_path / "no-such.ttf")
    stored = failed.value.message
    fail_export(stack.services.db, export.json()["id"], stored)

    zh, en = (_page(stack, reviewer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    shown = re.search(r'data-testid="export-error">(.*?)</span>', zh).group(1)
    assert shown.startswith(f"证书字体 {tmp_path / 'no-such.ttf'} 无法读取（"), shown
    assert shown.endswith("）；请安装 fonts-wqy-zenhei 或设置 EVIDENCE_EXPORT_CERTIFICATE_FONT"), shown
    assert "cannot be read" not in zh
    assert "cannot be read" in re.search(r'data-testid="export-error">(.*?)</span>', en).group(1)


def test_a_step_whose_item_went_or_whose_derived_files_failed_says_why_in_chinese(stack, officer, case):
    """A step's reason that is an error's message (an item that is no longer there, as the worker's
    copy says it; derived files the tools could not make, one failure per file) is said in
    Chinese on the case page, the tools' own messages as written; the English page keeps the English."""
    from ingest.errors import StepFailed
    from ingest.workspace import Workspace

    gone = str(uuid.uuid4())
    with Workspace(db=stack.services.db, store=stack.services.store, settings=stack.settings,
                   item_id=gone) as ws, pytest.raises(StepFailed) as missing:
        ws.item()
    stored = missing.value.message
    derive = "thumbnail: ffmpeg produced no thumbnail strip; proxy: cannot read original.mp4: moov atom not found"
    _item_with_steps(stack, officer, case, {"probe": ("failed", stored), "derive": ("failed", derive)})

    zh, en = (_page(stack, officer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    assert f"证据 {gone} 不存在" in zh and "no evidence item" not in zh
    assert "缩略图未能生成：ffmpeg produced no thumbnail strip；播放副本未能生成：cannot read original.mp4: moov atom " \
           "not found" in zh
    assert "thumbnail: ffmpeg" not in zh and "proxy: cannot read" not in zh
    assert stored in en and "ffmpeg produced no thumbnail strip" in en


def test_store_errors_kept_as_an_export_error_or_a_step_reason_are_said_in_chinese(stack, officer, case):
    """An object missing from the store (an export's error) and a store that cannot be reached (a
    step that will be retried), as the store's backend words them, are said in Chinese on the case
    page, the server's own words and the keys as written; the English page keeps the English."""
    import urllib3

    from archive.errors import ObjectNotFound
    from archive.exports.build import fail_export
    from archive.storage.s3_errors import translate
    from archive.work import STEP_REASONS

    key = f"v-{uuid.uuid4().hex[:8]}/originals/gone.mp4"
    with pytest.raises(ObjectNotFound) as missing:
        list(stack.services.store.read(key))
    unreachable = translate(urllib3.exceptions.MaxRetryError(None, "/"), f"read {key}")  # as the S3 store names it
    retrying = STEP_REASONS.say("retrying", detail=unreachable.message)
    reviewer = stack.user(role="reviewer", unit="unit-a")
    court = f"court-{uuid.uuid4().hex[:6]}"
    stack.user(role="court", unit="court-1", name=court)
    _item_with_steps(stack, officer, case, {"probe": ("queued", retrying)})
    with stack.client(reviewer) as c:  # not approved by a second reviewer: it waits, unbuilt
        export = c.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": court})
        assert export.status_code == 201, export.text
    fail_export(stack.services.db, export.json()["id"], missing.value.message)

    zh, en = (_page(stack, reviewer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    shown = re.search(r'data-testid="export-error">(.*?)</span>', zh).group(1)
    assert key in shown and ("没有对象" in shown or "未找到（NoSuchKey）" in shown), shown
    assert f"读取 {key}：无法连接 S3 服务（MaxRetryError）；将重试" in zh
    assert missing.value.message not in zh and unreachable.message not in zh
    assert missing.value.message in en and retrying in en


def test_a_seal_step_waiting_for_an_unreachable_time_stamping_authority_says_why_in_chinese(stack, officer, case):
    """The seal step's reason when the time-stamping authority cannot be reached (the e-seal's and
    the signing library's wording, kept in English by the worker) is said in Chinese on the case
    page, the transport's own message as written; the English page keeps the English."""
    from archive.seals.errors import TimestampUnavailable
    from archive.seals.sealer import Sealer
    from archive.work import STEP_REASONS
    from tests.servers import free_port

    sealer = Sealer(stack.settings.model_copy(update={"tsa_url": f"http://127.0.0.1:{free_port()}/tsa",
                                                      "tsa_timeout_seconds": 2}))
    with pytest.raises(TimestampUnavailable) as refused:
        sealer.seal(b"evidence")
    stored = STEP_REASONS.say("retrying", detail=refused.value.message)
    # The signing library's reason says what failed; the e-seal does not say it again.
    assert stored.startswith("time-stamping the seal failed: ") and "time-stamping failed" not in stored, stored
    _item_with_steps(stack, officer, case, {"seal": ("queued", stored)})

    zh, en = (_page(stack, officer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    assert "为签章获取时间戳失败：" in zh and "获取时间戳失败：为签章" not in zh and "；将重试" in zh
    assert "time-stamping the seal failed" not in zh
    assert "time-stamping the seal failed: " in en


def test_an_empty_document_is_noted_as_unreadable_in_chinese(stack, officer, case):
    """An empty document is kept and flagged; its document step's note (the archive's wording, kept
    in English as the API returns it) is said in Chinese on the case page."""
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "blank.pdf"},
                      content=b"").json()
    done = stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")
    assert done["processing"]["document"]["reason"] == "unreadable document: empty file", done["processing"]
    zh, en = (_page(stack, officer, f"/cases/{case['id']}", lang) for lang in ("zh", "en"))
    assert "文档无法读取：空文件" in zh and "unreadable document" not in zh
    assert "unreadable document: empty file" in en


def test_the_administrators_page_says_an_sm2_keys_missing_subject_in_chinese(stack):
    """An SM2 seal key is a bare key, no certificate: its row among the keys and certificates
    showed the placeholder the archive stores for its subject, "SM2 public key", in English on
    the Chinese page. It now says that the key has none, in the page's language."""
    from archive.seals.registry import record_sm2_key

    with stack.services.db.session() as s:
        record_sm2_key(s, stack.services.sealer.sm2_key.public_key)
    admin = stack.user(role="admin", unit="hq")
    for lang, said in (("zh", "无（SM2 公钥没有证书）"), ("en", "none (an SM2 key has no certificate)")):
        rows = re.findall(r'<tr data-testid="certificate-row">(.*?)</tr>', _page(stack, admin, "/admin", lang), re.S)
        sm2 = [row for row in rows if "SM2 public key" in row or said in row]
        assert sm2 and all(said in row and "SM2 public key" not in row for row in sm2), rows
