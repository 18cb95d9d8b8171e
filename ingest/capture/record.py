"""The inspection record (远程勘验笔录) as a PDF in Chinese, made with reportlab and its CID
font STSong-Light (Adobe-GB1: the reader supplies the glyphs, nothing is embedded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from archive.timefmt import DEFAULT_TIME_ZONE, local_time

FONT = "STSong-Light"


@dataclass(frozen=True)
class RecordFacts:
    """Everything the record states."""

    case_number: str
    case_title: str
    officer: str
    target: str
    mode: str
    device_id: str
    note: str | None
    start_tsa: str
    """TSA time (genTime) of the time-stamp taken when the capture started, ISO 8601 (UTC)."""
    end_tsa: str
    """TSA time of the WACZ signature's time-stamp, taken when the capture was sealed (ISO 8601)."""
    local_start: str
    local_end: str
    clock: dict[str, Any]
    environment: dict[str, Any]
    files: list[tuple[str, str, int, str]]
    """(file name, role, size, SHA-256) of every file produced."""
    outcome: str
    refused: tuple[tuple[str, str], ...] = ()
    """(address, why, in Chinese) of every request the capture policy refused."""
    failed: tuple[tuple[str, str], ...] = ()
    """(address, why, in Chinese) of every request that could not be made."""
    zone: str = DEFAULT_TIME_ZONE
    """The corps' time zone: every moment is stated in it, with its offset (stored in UTC)."""


def _styles() -> tuple[ParagraphStyle, ParagraphStyle, ParagraphStyle]:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    body = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=15, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=10)
    title = ParagraphStyle("title", parent=body, fontSize=18, leading=26, alignment=1)
    return title, body, small


def write_record(facts: RecordFacts, path: Path) -> None:
    """Write the record PDF to ``path``."""
    title, body, small = _styles()
    env = facts.environment
    p = lambda text, style=body: Paragraph(escape(str(text)), style)  # noqa: E731
    rows = [
        ("案件编号", facts.case_number), ("案件名称", facts.case_title), ("勘验人员", facts.officer),
        ("勘验对象", facts.target), ("勘验方式", "直播流录制" if facts.mode == "stream" else "网页远程勘验"),
        ("勘验工作站", facts.device_id),
        ("开始时间（时间戳机构）", local_time(facts.start_tsa, facts.zone)),
        ("结束时间（时间戳机构）", local_time(facts.end_tsa, facts.zone)),
        ("本机时钟", f"{local_time(facts.local_start, facts.zone, tenths=True)} 至 "
                    f"{local_time(facts.local_end, facts.zone, tenths=True)}；相对时间戳机构偏差 "
                    f"{facts.clock.get('offset_seconds')} 秒（误差 ±{facts.clock.get('uncertainty_seconds')} 秒）"),
        ("浏览器", env.get("software", {}).get("browser", "")),
        ("操作系统", f"{env.get('host', {}).get('os', '')} {env.get('host', {}).get('kernel', '')}"),
        ("代理环境变量", str(env.get("proxy_environment") or "无")),
        ("hosts 文件相关条目", "；".join(env.get("hosts_file_entries") or []) or "无"),
        ("域名解析", "；".join(f"{h}: {', '.join(a)}" for h, a in (env.get("dns") or {}).items()) or "无"),
        ("跳转链", " → ".join(f"{h.get('url')} ({h.get('status')})" for h in env.get("redirects") or []) or "无"),
        ("拒绝访问", "；".join(f"{url}：{why}" for url, why in facts.refused) or "无"),
        ("未能取得", "；".join(f"{url}：{why}" for url, why in facts.failed) or "无"),
        ("备注", facts.note or "无"), ("勘验结果", facts.outcome),
    ]
    method = ("由证据档案系统在隔离的工作站上启动全新的无头浏览器（Debian Chromium，经 Playwright 驱动，"
              "新建配置目录、无扩展、固定窗口），所有请求经系统内的记录代理发出并逐条写入 WARC，"
              "打包为 WACZ（含页面和索引），以本单位电子印章按 WACZ 签名规范签名并加盖时间戳；"
              "开始和结束时截取整页截图，全程录屏；环境信息记录于 environment.json。")
    story = [p("远程勘验笔录", title), Spacer(1, 4 * mm)]
    table = Table([[p(k), p(v)] for k, v in rows], colWidths=[38 * mm, 132 * mm], splitInRow=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, "#555555"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [table, Spacer(1, 4 * mm), p("勘验方法"), p(method), Spacer(1, 4 * mm),
              p("固定的电子数据及其 SHA-256 哈希值")]
    files = Table([[p("文件", small), p("类别", small), p("大小（字节）", small), p("SHA-256", small)]]
                  + [[p(n, small), p(r, small), p(s, small), p(h, small)] for n, r, s, h in facts.files],
                  colWidths=[45 * mm, 22 * mm, 20 * mm, 83 * mm], repeatRows=1, splitInRow=1)
    files.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, "#555555")]))
    story += [files, Spacer(1, 6 * mm), p("本笔录由系统生成，并以本单位电子印章（PAdES）签章。")]
    SimpleDocTemplate(str(path), pagesize=A4, title="远程勘验笔录", author=facts.officer,
                      leftMargin=20 * mm, rightMargin=20 * mm).build(story)
