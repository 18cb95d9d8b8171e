"""Documents: media-type sniffing of a file, page count and text of PDFs and office files.

The bytes rule of sniffing is :func:`archive.evidence.media_types.sniff_bytes` (the first
few kilobytes); this module adds the ZIP central directory of Office files. Text extraction
stops after ``max_chars`` characters and reads office XML incrementally, so a huge document
costs little memory. Whether a file can be parsed never decides whether it is kept.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import ParseError, iterparse

from archive.evidence.media_types import DOCX, HEAD, OFFICE_PREFIX, PPTX, XLSX, sniff_bytes
from archive.wording import Sentences
from ingest.errors import ProbeFailed
from ingest.zips import ZipReader

__all__ = ["DOCUMENT_PROBLEMS", "DocumentFacts", "document_facts", "sniff_bytes", "sniff_media_type"]

DEFAULT_MAX_CHARS = 200_000
# Office XML parts larger than this are not parsed (a compressed XML bomb).
_MAX_XML_PART = 512 << 20


DOCUMENT_PROBLEMS = Sentences("document_problem", {
    "not_document": "{file}: {kind} is not a document type this service reads",
    "unreadable_pdf": "{file}: unreadable PDF: {detail}",
    "too_large": "{file}: {part} is implausibly large",
    "unreadable_office": "{file}: unreadable office file: {detail}",
    "unreadable_text": "{file}: unreadable text: {detail}",
    "empty": "empty file",
}, fields={"file": r"[^:]+", "kind": r"\S+", "part": r"\S+"})
"""Why a document's text could not be read (its ``document`` fact's ``error``, its
``document_read`` custody entry); ``detail`` is the reading library's own message."""


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    """What could be read from a document."""

    media_type: str
    """Sniffed media type, e.g. ``application/pdf``."""
    page_count: int | None
    """Pages (PDF, or as Word last saved it), sheets (xlsx) or slides (pptx); None if unknown."""
    text: str
    """Extracted text, at most ``max_chars`` characters."""
    truncated: bool
    """True when more text was available than was returned."""
    encrypted: bool = False
    """True for an encrypted PDF whose text could not be read without a password."""
    signed_at: str | None = None
    """Latest signing time among the PDF's signatures (their ``/M``), ISO 8601; None if unsigned."""


def sniff_media_type(path: Path) -> str:
    """Return the media type of the file at ``path`` from its magic bytes.

    Recognises mp4/mov, mkv/webm, avi, MPEG-TS/PS, jpeg, png, gif, webp, tiff, pdf,
    zip and docx/xlsx/pptx, warc (plain or gzip), html, plain text and a few more;
    ``application/octet-stream`` otherwise. Only the first few kilobytes are read
    (plus the central directory of a ZIP).
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(HEAD)
    kind = sniff_bytes(head, name=path.name)
    if kind == "application/zip":
        kind = _office_kind(path) or kind
    return kind


def document_facts(path: Path, *, max_chars: int = DEFAULT_MAX_CHARS) -> DocumentFacts:
    """Return page count and the first ``max_chars`` characters of text of a document.

    Supports PDF (via pypdf), docx/xlsx/pptx (their XML, read with the standard
    library), HTML and plain text.

    Raises:
        ProbeFailed: the file is not a supported document or cannot be parsed.
    """
    path = Path(path)
    kind = sniff_media_type(path)
    if kind == "application/pdf":
        return _pdf_facts(path, max_chars)
    if kind in (DOCX, XLSX, PPTX):
        return _office_facts(path, kind, max_chars)
    if kind in ("text/plain", "text/html"):
        return _text_facts(path, kind, max_chars)
    raise ProbeFailed(message=DOCUMENT_PROBLEMS.say("not_document", file=path.name, kind=kind))


def _office_kind(path: Path) -> str | None:
    try:
        with ZipReader(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    for prefix, kind in OFFICE_PREFIX.items():
        if any(n.startswith(prefix) for n in names):
            return kind
    return None


def _pdf_facts(path: Path, max_chars: int) -> DocumentFacts:
    from pypdf import PdfReader

    # Evidence PDFs are often damaged yet readable; pypdf reports repairs as warnings,
    # which are not failures here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with path.open("rb") as fh:
                reader = PdfReader(fh, strict=False)
                encrypted = bool(reader.is_encrypted)
                if encrypted and not reader.decrypt(""):
                    return DocumentFacts(
                        media_type="application/pdf",
                        page_count=_encrypted_page_count(reader),
                        text="",
                        truncated=False,
                        encrypted=True,
                    )
                signed_at = _latest_signing_time(reader)
                pages = reader.pages
                count = len(pages)
                parts: list[str] = []
                used = 0
                truncated = False
                for page in pages:
                    if used >= max_chars:
                        truncated = True
                        break
                    chunk = page.extract_text() or ""
                    parts.append(chunk)
                    used += len(chunk) + 1
        except Exception as exc:  # pypdf raises many kinds on hostile input
            raise ProbeFailed(message=DOCUMENT_PROBLEMS.say("unreadable_pdf", file=path.name, detail=exc)) from exc
    text = "\n".join(parts)
    if len(text) > max_chars:
        text, truncated = text[:max_chars], True
    return DocumentFacts(
        media_type="application/pdf", page_count=count, text=text, truncated=truncated, signed_at=signed_at
    )


_PDF_DATE = re.compile(r"D:([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})"
                       r"(?:([Zz+-])(?:([0-9]{2})'?([0-9]{2})?'?)?)?")


def pdf_date(value: str) -> datetime | None:
    """A PDF date string (``D:20260301113000+08'00'``) as an aware datetime; None if it has no zone
    or does not parse (a signing time without a zone cannot be placed in time)."""
    m = _PDF_DATE.match(value.strip())
    if m is None or m.group(7) is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if m.group(7) in "Zz":
        zone = timezone.utc
    else:
        sign = 1 if m.group(7) == "+" else -1
        hours, minutes = int(m.group(8) or 0), int(m.group(9) or 0)
        if hours > 23 or minutes > 59:
            # +08'99' was read as +09:39 and +99'00' raised (the document step failed): a signing
            # time whose offset is no offset cannot be placed in time.
            return None
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def _latest_signing_time(reader: Any) -> str | None:
    """The latest ``/M`` of the signature fields of a PDF (the signing of a record)."""
    times = []
    for field in (reader.get_fields() or {}).values():
        if field.get("/FT") != "/Sig":
            continue
        value = field.get("/V")
        value = value.get_object() if hasattr(value, "get_object") else value
        moment = pdf_date(str(value.get("/M", ""))) if isinstance(value, dict) else None
        if moment is not None:
            times.append(moment)
    return max(times).isoformat() if times else None


def _encrypted_page_count(reader: object) -> int | None:
    try:
        return len(reader.pages)  # type: ignore[attr-defined]
    except Exception:  # the page tree itself may be unreadable without the key
        return None


def _office_facts(path: Path, kind: str, max_chars: int) -> DocumentFacts:
    try:
        with ZipReader(path) as zf:
            names = zf.namelist()
            if kind == DOCX:
                parts = ["word/document.xml"]
                page_count = _docx_pages(zf, names)
                text_tag, para_tag = "t", "p"
            elif kind == XLSX:
                parts = ["xl/sharedStrings.xml"] + sorted(
                    (n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)),
                    key=_part_number,
                )
                page_count = sum(
                    1 for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)
                )
                text_tag, para_tag = "t", "si"
            else:
                slides = sorted(
                    (n for n in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                    key=_part_number,
                )
                parts = slides
                page_count = len(slides)
                text_tag, para_tag = "t", "p"
            out = _TextBudget(max_chars)
            for part in parts:
                if part not in names or out.full:
                    continue
                info = zf.getinfo(part)
                if info.file_size > _MAX_XML_PART:
                    raise ProbeFailed(message=DOCUMENT_PROBLEMS.say("too_large", file=path.name, part=part))
                with zf.open(info) as fh:
                    _xml_text(fh, text_tag, para_tag, out)
    except (zipfile.BadZipFile, ParseError, OSError, KeyError, RuntimeError) as exc:
        raise ProbeFailed(message=DOCUMENT_PROBLEMS.say("unreadable_office", file=path.name, detail=exc)) from exc
    return DocumentFacts(
        media_type=kind, page_count=page_count, text=out.text(), truncated=out.truncated
    )


def _part_number(name: str) -> int:
    match = re.search(r"(\d+)\.xml$", name)
    return int(match.group(1)) if match else 0


def _docx_pages(zf: zipfile.ZipFile, names: list[str]) -> int | None:
    if "docProps/app.xml" not in names:
        return None
    with zf.open("docProps/app.xml") as fh:
        for _, elem in iterparse(fh):
            # ASCII digits: str.isdigit() holds for "²", which int() refuses (the step failed).
            if _local(elem.tag) == "Pages" and elem.text and elem.text.strip().isascii() and elem.text.strip().isdigit():
                return int(elem.text.strip())
    return None


class _TextBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0
        self.truncated = False

    @property
    def full(self) -> bool:
        return self.used >= self.limit

    def add(self, s: str) -> None:
        if self.full:
            self.truncated = self.truncated or bool(s)
            return
        room = self.limit - self.used
        if len(s) > room:
            s, self.truncated = s[:room], True
        self.parts.append(s)
        self.used += len(s)

    def text(self) -> str:
        return "".join(self.parts)


def _xml_text(fh: IO[bytes], text_tag: str, para_tag: str, out: _TextBudget) -> None:
    for _, elem in iterparse(fh, events=("end",)):
        tag = _local(elem.tag)
        if tag == text_tag and elem.text:
            out.add(elem.text)
        elif tag == para_tag:
            out.add("\n")
            # Paragraph done: drop its subtree so memory stays flat on huge parts.
            elem.clear()
        if out.full:
            out.truncated = True
            return


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _HTMLText(HTMLParser):
    def __init__(self, out: _TextBudget) -> None:
        super().__init__(convert_charrefs=True)
        self.out = out
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        elif tag in ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "title"):
            self.out.add("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.add(data)


def _text_facts(path: Path, kind: str, max_chars: int) -> DocumentFacts:
    with path.open("rb") as fh:
        head = fh.read(4)
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    out = _TextBudget(max_chars)
    parser = _HTMLText(out) if kind == "text/html" else None
    try:
        with path.open("r", encoding=encoding, errors="replace") as fh:
            while not out.full and (chunk := fh.read(1 << 16)):
                if parser is not None:
                    parser.feed(chunk)
                else:
                    out.add(chunk)
            if out.full and fh.read(1):
                out.truncated = True
    except OSError as exc:
        raise ProbeFailed(message=DOCUMENT_PROBLEMS.say("unreadable_text", file=path.name, detail=exc)) from exc
    if parser is not None:
        parser.close()
    return DocumentFacts(media_type=kind, page_count=None, text=out.text(), truncated=out.truncated)
