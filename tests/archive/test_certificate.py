"""The certificate of a certified export as a Chinese court reads it: Chinese first, English
second, stored values said in words, a Chinese font embedded, no markup escaped twice."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from archive.continuity.analysis import CAUSES
from archive.exports.certificate import certificate_pdf
from archive.exports.errors import ExportFailed
from archive.exports.plan import Plan

SNAKE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def _entry(seq: int, action: str, item: str | None = None) -> dict:
    return {"entry": {"seq": seq, "time": f"2026-03-02T02:0{seq}:00.000000Z", "actor": "officer:li",
                      "action": action, "item": item}}


def _plan() -> Plan:
    item = "0b6c1e52-5d1e-4d8f-9a57-7f8c2f1d3e01"
    gap = {"level": "between_segments", "device": "CAM-7", "start": "2026-03-02T02:01:08.011000Z",
           "end": "2026-03-02T02:03:00.000000Z", "cause": CAUSES["between_segments"].format(previous="a1", item="b2"),
           "status": "accepted", "explanation": "电池更换", "explained_by": "officer:li",
           "explained_at": "2026-03-02T03:00:00Z", "reviewed_by": "reviewer:wang", "reviewed_at": "2026-03-02T04:00:00Z",
           "review_comment": "同意"}
    return Plan(
        export_id="e-1", when=datetime(2026, 3, 5, 2, 0, tzinfo=timezone.utc),
        case={"id": "c-1", "number": "WH-2026-001", "title": "无证经营案", "unit": "一大队", "status": "closed"},
        people={"requested_by": "reviewer:zhao", "approved_by": "reviewer:wang", "recipient": "court:chen",
                "approved_at": "2026-03-04T02:00:00Z"},
        items=[{"id": item, "kind": "bodycam_video", "size": 123456, "sha256": "ab" * 32,
                "received_at": "2026-03-02T02:10:00Z", "path": f"data/originals/{item}/现场 录像.mp4",
                "derived": [{"role": "proxy", "path": f"data/derived/{item}/proxy.mp4", "media_type": "video/mp4",
                             "size": 2048, "sha256": "cd" * 32}]}],
        entries=[_entry(1, "case_created"), _entry(2, "evidence_received", item), _entry(3, "case_stage_moved"),
                 _entry(4, "legal_review_recorded")],
        checkpoint={"tree_size": 198, "root_hash": "ef" * 32},
        continuity={"summary": {"gaps": 1, "accepted": 1, "unresolved": 0, "status": "explained"}, "gaps": [gap]},
        chain_pem=b"", sm2_keys_pem=b"", scope={"selected": True, "items": 1, "case_items": 3},
    )


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> str:
    pdf = tmp_path_factory.mktemp("certificate") / "certificate.pdf"
    pdf.write_bytes(certificate_pdf(plan=_plan(), root="WH-2026-001_e-1", organisation="某市市场监督管理局"))
    fonts = subprocess.run(["pdffonts", pdf], capture_output=True, text=True, check=True).stdout
    assert re.search(r"WenQuanYi\S*\s+TrueType.*\byes\s+yes\s+yes\b", fonts), fonts  # embedded, subset, unicode
    return subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True, check=True).stdout


def test_headings_are_chinese_then_english(text: str) -> None:
    for heading in ("核证导出证明书", "Certificate of certified export", "保管链记录 / Custody timeline",
                    "录像连续性 / Continuity of recording", "如何核验本导出 / How to verify this export"):
        assert heading in text, heading
    assert "由 某市市场监督管理局 于 2026-03-05 10:00:00 +08:00 出具" in text
    assert re.search(r"Issued by 某市市场监督管理局 on 2026-03-05 10:00:00 \+08:00", text)


def test_stored_values_are_said_in_both_languages(text: str) -> None:
    for said in ("已结案", "执法记录仪视频", "body-camera video", "变更案件阶段", "记录法制审核", "legal review recorded",
                 "分段之间", "between segments", "已接受", "录像 a1 与录像 b2", "播放副本",
                 "中断均已说明并接受", "无证经营案", "现场 录像.mp4", "电池更换"):
        assert said in text, said
    assert "UTC" not in text and "02:01:08" not in text and "2026-03-02 10:01:08.0" in text  # local, not UTC


def test_no_raw_codes_and_no_escaped_markup(text: str) -> None:
    assert "&lt;" not in text and "&gt;" not in text and "&amp;" not in text
    assert "items/<id>/manifest.json" in text
    assert SNAKE.findall(text) == []


def test_a_missing_font_fails_the_export_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ExportFailed, match="no-such.ttf") as failed:
        certificate_pdf(plan=_plan(), root="r", organisation="o", font=tmp_path / "no-such.ttf")
    assert failed.value.code == "certificate_font_missing"
