"""The human-readable certificate of a certified export (PDF, sealed PAdES-B-T afterwards).

Made with reportlab's platypus, for Chinese courts: every heading, label and stored value is
said in Chinese first and English second, from the message catalogue the pages use
(:mod:`archive.i18n`); the people's own words (titles, explanations, file names) as written.
The text is set in a Chinese-capable TrueType font embedded as a subset (settings'
``export_certificate_font``, WenQuanYi Zen Hei by default), so a reader needs no font of its
own and text extraction (``pdftotext``) gives the characters back.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import LongTable, Paragraph, Preformatted, SimpleDocTemplate, Spacer

from archive.exports.errors import ExportFailed
from archive.exports.plan import Plan
from archive.i18n import enum_label, gap_cause, translate
from archive.settings import CERTIFICATE_FONT
from archive.timefmt import DEFAULT_TIME_ZONE, gap_span, local_time
from archive.wording import Sentences

MAX_TIMELINE_ROWS = 2000
"""Beyond this the certificate lists the first entries and points to ledger/entries.jsonl."""

_SECOND = "#555555"
"""The colour of the English line under the Chinese one."""


FONT_PROBLEMS = Sentences("export_problem", {
    "font_unreadable": "the certificate's font {path} cannot be read ({detail}); install fonts-wqy-zenhei "
                       "or set EVIDENCE_EXPORT_CERTIFICATE_FONT",
}, fields={"path": r".+?"})
"""Why the certificate of an export cannot be written (the export's ``error``); ``detail`` is
the font library's own message."""


def _font(path: Path) -> str:
    """The reportlab name of the TrueType font at ``path``, registered once (first face of a collection)."""
    name = f"cert-{path.stem}"
    if name not in pdfmetrics.getRegisteredFontNames():
        try:
            pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
        except (OSError, TTFError) as exc:
            raise ExportFailed(FONT_PROBLEMS.say("font_unreadable", path=path, detail=exc),
                               code="certificate_font_missing") from exc
    return name


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("title", parent=base["Title"], fontName=font, spaceAfter=2),
        "subtitle": ParagraphStyle("subtitle", parent=base["Title"], fontName=font, fontSize=11, leading=14,
                                   textColor=colors.HexColor(_SECOND)),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=font, fontSize=12, leading=15),
        "body": ParagraphStyle("body", parent=base["BodyText"], fontName=font, fontSize=9, leading=12,
                               wordWrap="CJK"),
        "second": ParagraphStyle("second", parent=base["BodyText"], fontName=font, fontSize=8, leading=10.5,
                                 textColor=colors.HexColor(_SECOND)),
        "cell": ParagraphStyle("cell", parent=base["BodyText"], fontName=font, fontSize=7.5, leading=9,
                               wordWrap="CJK"),
        "mono": ParagraphStyle("mono", parent=base["Code"], fontSize=6.5, leading=8),
        "code": ParagraphStyle("code", parent=base["Code"], fontSize=7.5, leading=9.5),
    }


def _both(key: str, **values: object) -> tuple[str, str]:
    """Message ``key`` in Chinese and in English."""
    return translate("zh", key, **values), translate("en", key, **values)


def _both_naming(key: str, name: str, said: tuple[str, str], **values: object) -> tuple[str, str]:
    """Message ``key`` in Chinese and in English, its placeholder ``name`` filled with ``said``
    (a value already said in each language)."""
    zh, en = said
    return translate("zh", key, **{name: zh}, **values), translate("en", key, **{name: en}, **values)


def _labels(group: str, value: object) -> tuple[str, str]:
    """A stored value's label in Chinese and in English (the value itself when it has none)."""
    return enum_label("zh", group, value), enum_label("en", group, value)


def _p(text: Any, styles: dict[str, ParagraphStyle], style: str = "cell") -> Paragraph:
    """Plain text (escaped here, never before) in one paragraph."""
    value = escape("" if text is None else str(text))
    if style == "mono":  # long hashes get break opportunities so table cells can wrap them
        value = "<br/>".join(value[i:i + 32] for i in range(0, len(value), 32))
    return Paragraph(value, styles[style])


def _pair(said: tuple[str, str], styles: dict[str, ParagraphStyle], *, extra: str = "") -> Paragraph:
    """A cell saying ``(Chinese, English)``: the English in grey under the Chinese (once when
    both are the same), then ``extra`` (plain text, e.g. a path) on a line of its own."""
    zh, en = (escape(s) for s in said)
    text = zh if zh == en else f'{zh}<br/><font color="{_SECOND}">{en}</font>'
    return Paragraph(text + (f"<br/>{escape(extra)}" if extra else ""), styles["cell"])


def _heading(key: str, styles: dict[str, ParagraphStyle]) -> Paragraph:
    return _p(" / ".join(_both(key)), styles, "h2")


def _paragraphs(said: tuple[str, str], styles: dict[str, ParagraphStyle]) -> list[Paragraph]:
    """A passage in Chinese, then in English in smaller grey type."""
    return [_p(said[0], styles, "body"), _p(said[1], styles, "second")]


def _table(rows: list[list[Any]], widths: list[float]) -> LongTable:
    table = LongTable(rows, colWidths=widths, repeatRows=1)
    table.setStyle([
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
    ])
    return table


def _header(keys: tuple[str, ...], styles: dict[str, ParagraphStyle]) -> list[Paragraph]:
    return [_pair(_both(key), styles) for key in keys]


def _case_table(plan: Plan, root: str, zone: str, s: dict[str, ParagraphStyle], width: float) -> LongTable:
    people, checkpoint = plan.people, plan.checkpoint
    approved = local_time(people["approved_at"], zone)
    rows: list[tuple[str, Paragraph]] = [
        ("certificate.case_number", _p(plan.case["number"], s)),
        ("certificate.case_title", _p(plan.case["title"], s)),
        ("certificate.unit", _p(plan.case["unit"], s)),
        ("certificate.case_status", _pair(_labels("case_status", plan.case["status"]), s)),
        ("certificate.scope", _pair(_both("certificate.scope_selected" if plan.scope["selected"]
                                          else "certificate.scope_all", count=plan.scope["items"],
                                          total=plan.scope["case_items"]), s)),
        ("certificate.export", _p(plan.export_id, s)),
        ("certificate.bag", _p(root, s)),
        ("certificate.requested_by", _p(people["requested_by"], s)),
        ("certificate.approved_by", _pair(_both("certificate.approved", who=people["approved_by"], at=approved), s)),
        ("certificate.recipient", _p(people["recipient"], s)),
        ("certificate.checkpoint", _pair(_both("certificate.checkpoint_value", size=checkpoint["tree_size"],
                                               root=checkpoint["root_hash"]), s)),
    ]
    return _table([_header(("certificate.field", "certificate.value"), s),
                   *([_pair(_both(key), s), value] for key, value in rows)], [45 * mm, width - 45 * mm])


def _items_table(plan: Plan, zone: str, s: dict[str, ParagraphStyle], width: float) -> LongTable:
    rows = [_header(("certificate.item_file", "certificate.kind", "certificate.size", "detail.sha256",
                     "certificate.received"), s)]
    for item in plan.items:
        rows.append([_pair((item["id"], item["id"]), s, extra=item["path"]), _pair(_labels("kind", item["kind"]), s),
                     _p(f"{item['size']:,}", s), _p(item["sha256"], s, "mono"),
                     _p(local_time(item["received_at"], zone), s)])
        for d in item["derived"]:
            said = _both_naming("certificate.derived", "role", _labels("derived", d["role"]))
            rows.append([_pair(said, s, extra=d["path"]), _p(d["media_type"], s), _p(f"{d['size']:,}", s),
                         _p(d["sha256"], s, "mono"), _p("", s)])
    return _table(rows, [62 * mm, 24 * mm, 24 * mm, 44 * mm, width - 154 * mm])


def _timeline(plan: Plan, zone: str, s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    entries, story = plan.entries, []
    if len(entries) > MAX_TIMELINE_ROWS:
        story += _paragraphs(_both("certificate.timeline_cut", shown=MAX_TIMELINE_ROWS, total=len(entries)), s)
        entries = entries[:MAX_TIMELINE_ROWS]
    rows = [_header(("certificate.seq", "certificate.time", "certificate.actor", "certificate.action",
                     "certificate.item"), s)]
    for e in entries:
        f = e["entry"]
        rows.append([_p(f["seq"], s), _p(local_time(f["time"], zone), s), _p(f["actor"], s),
                     _pair(_labels("action", f["action"]), s), _p((f["item"] or "")[:8], s)])
    story.append(_table(rows, [14 * mm, 44 * mm, 50 * mm, 44 * mm, width - 152 * mm]))
    return story


def _continuity(plan: Plan, zone: str, s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    summary = plan.continuity["summary"]
    said = _both_naming("certificate.continuity_summary", "status", _labels("continuity_status", summary["status"]),
                        gaps=summary["gaps"], accepted=summary["accepted"], unresolved=summary["unresolved"])
    story: list[Any] = _paragraphs(said, s)
    if not plan.continuity["gaps"]:
        return story
    rows = [_header(("certificate.level_device", "certificate.span", "certificate.duration", "certificate.cause",
                     "certificate.explanation", "certificate.review"), s)]
    # The clips a cause names by id, by their file names (as the items table lists them).
    names = {item["id"]: item["filename"] for item in plan.items if item.get("filename")}
    for g in plan.continuity["gaps"]:
        start, end, duration = gap_span(g["start"], g["end"], zone)
        explained = f" - {g['explained_by']}, {local_time(g['explained_at'], zone)}" if g.get("explained_by") else ""
        reviewed = f" {g['reviewed_by']}, {local_time(g['reviewed_at'], zone)}" if g.get("reviewed_by") else ""
        explanation = _both("certificate.no_explanation") if not g["explanation"] else (g["explanation"],) * 2
        rows.append([
            _pair(_labels("level", g["level"]), s, extra=g["device"] or ""), _p(f"{start} - {end}", s),
            _p(duration, s), _pair((gap_cause("zh", g["cause"], clips=names),
                                       gap_cause("en", g["cause"], clips=names)), s),
            _pair(explanation, s, extra=explained.lstrip(" -")),
            _pair(_labels("gap_status", g["status"]), s, extra=f"{reviewed} {g['review_comment'] or ''}".strip()),
        ])
    story.append(_table(rows, [26 * mm, 38 * mm, 16 * mm, 34 * mm, 40 * mm, width - 154 * mm]))
    return story


def _how_to_verify(s: dict[str, ParagraphStyle]) -> list[Any]:
    return [
        *_paragraphs(_both("certificate.verify_root"), s),
        Preformatted("evidence-verify EXPORT.zip --trust ROOT.pem", s["code"]),
        *_paragraphs(_both("certificate.verify_tools"), s),
        Preformatted(
            "bagit.py --validate .                        # completeness, manifests, Payload-Oxum\n"
            "sha256sum -c manifest-sha256.txt              # every original\n"
            "sha256sum -c tagmanifest-sha256.txt           # every tag file\n"
            "openssl cms -verify -binary -inform DER -in export-manifest.json.p7s \\\n"
            "    -content export-manifest.json -CAfile ROOT.pem -purpose any -out /dev/null\n"
            "    (the same for items/*/manifest.json.p7s, ledger/checkpoint.json.p7s,\n"
            "     continuity/report.json.p7s)\n"
            "pdfsig -nssdir sql:nss certificate.pdf        # this certificate's PAdES seal, ROOT.pem\n"
            "    imported first: certutil -N -d sql:nss --empty-password;\n"
            "    certutil -A -d sql:nss -n root -t CT,CT,CT -i ROOT.pem\n"
            "pyhanko sign validate --trust ROOT.pem certificate.pdf", s["code"]),
        *_paragraphs(_both("certificate.verify_items"), s),
    ]


def certificate_pdf(*, plan: Plan, root: str, organisation: str, zone: str = DEFAULT_TIME_ZONE,
                    font: Path = CERTIFICATE_FONT) -> bytes:
    """The certificate for one export, as unsigned PDF bytes; times in ``zone`` with their offset,
    text set in the TrueType ``font`` (embedded). Raises ExportFailed when the font cannot be read."""
    s = _styles(_font(font))
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=14 * mm, bottomMargin=14 * mm,
        title=" / ".join(_both("certificate.pdf_title", number=plan.case["number"])), author=organisation,
        subject=f"Export {plan.export_id}", creator="evidence archive",
    )
    width = A4[0] - 28 * mm
    title = _both("certificate.title")
    story: list[Any] = [
        _p(title[0], s, "title"), _p(title[1], s, "subtitle"),
        *_paragraphs(_both("certificate.issued", organisation=organisation, when=local_time(plan.when, zone)), s),
        Spacer(1, 4 * mm),
        _heading("certificate.case", s), _case_table(plan, root, zone, s, width),
        _heading("certificate.items", s), _items_table(plan, zone, s, width),
        _heading("certificate.timeline", s), *_timeline(plan, zone, s, width),
        _heading("certificate.continuity", s), *_continuity(plan, zone, s, width),
        _heading("certificate.verify", s), *_how_to_verify(s),
    ]
    doc.build(story)
    return out.getvalue()
