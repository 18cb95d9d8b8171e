"""The human-readable certificate of a certified export (PDF, sealed PAdES-B-T afterwards).

Made with reportlab's platypus. Text in CJK scripts (file names, explanations) is set in
the Adobe CID font STSong-Light, which every conforming PDF reader supplies, so nothing
has to be embedded and nothing renders as empty boxes.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import LongTable, Paragraph, Preformatted, SimpleDocTemplate, Spacer

from archive.exports.plan import Plan
from archive.timefmt import DEFAULT_TIME_ZONE, gap_span, local_time

MAX_TIMELINE_ROWS = 2000
"""Beyond this the certificate lists the first entries and points to ledger/entries.jsonl."""

_CJK_FONT = "STSong-Light"
_registered = False


def _styles() -> dict[str, ParagraphStyle]:
    global _registered
    if not _registered:
        pdfmetrics.registerFont(UnicodeCIDFont(_CJK_FONT))
        _registered = True
    base = getSampleStyleSheet()
    return {
        "title": base["Title"],
        "h2": base["Heading2"],
        "body": base["BodyText"],
        "cell": ParagraphStyle("cell", parent=base["BodyText"], fontSize=7.5, leading=9),
        "cjk": ParagraphStyle("cjk", parent=base["BodyText"], fontName=_CJK_FONT, fontSize=7.5, leading=9),
        "mono": ParagraphStyle("mono", parent=base["Code"], fontSize=6.5, leading=8),
        "code": ParagraphStyle("code", parent=base["Code"], fontSize=7.5, leading=9.5),
    }


def _p(text: Any, styles: dict[str, ParagraphStyle], style: str = "cell") -> Paragraph:
    value = "" if text is None else str(text)
    if style == "cell" and any(ord(ch) > 0x2FF for ch in value):
        style = "cjk"
    # Long hashes and ids get break opportunities so table cells can wrap them.
    value = escape(value)
    if style == "mono":
        value = "<br/>".join(value[i:i + 32] for i in range(0, len(value), 32))
    return Paragraph(value, styles[style])


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


def _size(n: int) -> str:
    return f"{n:,} bytes"


def certificate_pdf(*, plan: Plan, root: str, organisation: str, zone: str = DEFAULT_TIME_ZONE) -> bytes:
    """The certificate for one export, as unsigned PDF bytes; times in ``zone`` with their offset."""
    s = _styles()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=14 * mm, bottomMargin=14 * mm,
        title=f"Certified export of case {plan.case['number']}", author=organisation,
        subject=f"Export {plan.export_id}", creator="evidence archive",
    )
    width = A4[0] - 28 * mm
    story: list[Any] = [
        _p("Certificate of certified export", s, "title"),
        _p(f"Issued by {organisation} on {local_time(plan.when, zone)}. This certificate is sealed "
           "(PAdES-B-T, with an RFC 3161 time-stamp); every file it names is listed with its SHA-256 in "
           "export-manifest.json, which is sealed as well.", s, "body"),
        Spacer(1, 4 * mm),
        _p("Case", s, "h2"),
        _table([
            [_p("Field", s), _p("Value", s)],
            [_p("Case number", s), _p(plan.case["number"], s)],
            [_p("Title", s), _p(plan.case["title"], s)],
            [_p("Unit", s), _p(plan.case["unit"], s)],
            [_p("Case status", s), _p(plan.case["status"], s)],
            [_p("Export", s), _p(plan.export_id, s)],
            [_p("Bag directory", s), _p(root, s)],
            [_p("Requested by", s), _p(plan.people["requested_by"], s)],
            [_p("Approved by", s), _p(f"{plan.people['approved_by']} at {local_time(plan.people['approved_at'], zone)}", s)],
            [_p("Recipient", s), _p(plan.people["recipient"], s)],
            [_p("Sealed ledger checkpoint", s),
             _p(f"tree size {plan.checkpoint['tree_size']}, root {plan.checkpoint['root_hash']}", s)],
        ], [45 * mm, width - 45 * mm]),
        _p("Evidence items", s, "h2"),
    ]
    rows = [[_p(h, s) for h in ("Item / file in the bag", "Kind", "Size", "SHA-256", "Received")]]
    for item in plan.items:
        label = f"{item['id']}<br/>{escape(item['path'])}"
        rows.append([
            Paragraph(label, s["cjk"] if any(ord(c) > 0x2FF for c in item["path"]) else s["cell"]),
            _p(item["kind"], s), _p(_size(item["size"]), s), _p(item["sha256"], s, "mono"),
            _p(local_time(item["received_at"], zone), s),
        ])
        for d in item["derived"]:
            rows.append([_p(f"derived {d['role']}: {d['path']}", s), _p(d["media_type"], s), _p(_size(d["size"]), s),
                         _p(d["sha256"], s, "mono"), _p("", s)])
    story.append(_table(rows, [62 * mm, 24 * mm, 24 * mm, 44 * mm, width - 154 * mm]))

    story.append(_p("Custody timeline", s, "h2"))
    entries = plan.entries
    if len(entries) > MAX_TIMELINE_ROWS:
        story.append(_p(f"The first {MAX_TIMELINE_ROWS} of {len(entries)} entries; all are in ledger/entries.jsonl.",
                        s, "body"))
        entries = entries[:MAX_TIMELINE_ROWS]
    rows = [[_p(h, s) for h in ("Seq", "Time", "Actor", "Action", "Item")]]
    for e in entries:
        f = e["entry"]
        rows.append([_p(f["seq"], s), _p(local_time(f["time"], zone), s), _p(f["actor"], s), _p(f["action"], s),
                     _p((f["item"] or "")[:8], s)])
    story.append(_table(rows, [14 * mm, 44 * mm, 50 * mm, 44 * mm, width - 152 * mm]))

    story.append(_p("Continuity of recording", s, "h2"))
    summary = plan.continuity["summary"]
    story.append(_p(f"{summary['gaps']} gap(s); {summary['accepted']} explained and accepted by a reviewer; "
                    f"{summary['unresolved']} not accepted. Status: {summary['status']}.", s, "body"))
    if plan.continuity["gaps"]:
        rows = [[_p(h, s) for h in ("Level / device", "From - to", "Duration", "Cause", "Explanation", "Review")]]
        for g in plan.continuity["gaps"]:
            start, end, duration = gap_span(g["start"], g["end"], zone)
            explained = f" - {g['explained_by']}, {local_time(g['explained_at'], zone)}" if g.get("explained_by") else ""
            reviewed = f" {g['reviewed_by']}, {local_time(g['reviewed_at'], zone)}" if g.get("reviewed_by") else ""
            rows.append([
                _p(f"{g['level']} {g['device'] or ''}", s), _p(f"{start} - {end}", s),
                _p(duration, s), _p(g["cause"], s),
                _p(f"{g['explanation'] or '(none)'}{explained}", s),
                _p(f"{g['status']}{reviewed} {g['review_comment'] or ''}", s),
            ])
        story.append(_table(rows, [26 * mm, 38 * mm, 16 * mm, 34 * mm, 40 * mm, width - 154 * mm]))

    story.append(_p("How to verify this export", s, "h2"))
    story.append(_p("You need the organisation's root certificate (ROOT.pem), obtained from the organisation "
                    "through a channel you trust, not from this export. With the project's offline verifier, "
                    "installed on its own (pip install evidence-verifier; no server, no account):", s, "body"))
    story.append(Preformatted("evidence-verify EXPORT.zip --trust ROOT.pem", s["code"]))
    story.append(_p("Or each part with standard tools, from inside the unpacked bag directory:", s, "body"))
    story.append(Preformatted(
        "bagit.py --validate .                        # completeness, manifests, Payload-Oxum\n"
        "sha256sum -c manifest-sha256.txt              # every original\n"
        "sha256sum -c tagmanifest-sha256.txt           # every tag file\n"
        "openssl cms -verify -binary -inform DER -in export-manifest.json.p7s \\\n"
        "    -content export-manifest.json -CAfile ROOT.pem -purpose any -out /dev/null\n"
        "    (the same for items/*/manifest.json.p7s, ledger/checkpoint.json.p7s,\n"
        "     continuity/report.json.p7s)\n"
        "pdfsig certificate.pdf                        # this certificate's PAdES seal\n"
        "pyhanko sign validate --trust ROOT.pem certificate.pdf", s["code"]))
    story.append(_p("Each items/&lt;id&gt;/manifest.json states the SHA-256 of one original; it must equal the "
                    "line for that original in manifest-sha256.txt. Each line of ledger/entries.jsonl carries an "
                    "RFC 9162 inclusion proof against the sealed checkpoint in ledger/checkpoint.json.", s, "body"))
    doc.build(story)
    return out.getvalue()
