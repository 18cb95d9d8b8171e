"""Media-type sniffing and document facts."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest

from ingest.documents import DOCX, PPTX, XLSX, document_facts, sniff_media_type
from ingest.errors import ProbeFailed


def test_pdf_page_count_and_text(pdf_file: Path) -> None:
    facts = document_facts(pdf_file)
    assert facts.media_type == "application/pdf"
    assert facts.page_count == 2
    assert "Seizure record page one" in facts.text
    assert "Signed by the officer" in facts.text
    assert not facts.truncated


def test_pdf_text_is_capped(pdf_file: Path) -> None:
    facts = document_facts(pdf_file, max_chars=10)
    assert len(facts.text) == 10 and facts.truncated


def test_docx_text_and_pages(docx_file: Path) -> None:
    facts = document_facts(docx_file)
    assert facts.media_type == DOCX
    assert facts.page_count == 2
    assert facts.text.splitlines() == ["Interview record", "The party declined to sign."]


def test_xlsx_and_pptx_text(tmp_path: Path) -> None:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    xlsx = tmp_path / "fines.xlsx"
    with zipfile.ZipFile(xlsx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}"><si><t>Fine</t></si><si><t>5000</t></si></sst>')
        zf.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{main}"/>')
        zf.writestr("xl/worksheets/sheet2.xml", f'<worksheet xmlns="{main}"/>')
    facts = document_facts(xlsx)
    assert (facts.media_type, facts.page_count) == (XLSX, 2)
    assert facts.text.split() == ["Fine", "5000"]

    a = "http://schemas.openxmlformats.org/drawingml/2006/main"
    pptx = tmp_path / "brief.pptx"
    with zipfile.ZipFile(pptx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        for i in (1, 2, 10):
            zf.writestr(f"ppt/slides/slide{i}.xml", f'<sld xmlns:a="{a}"><a:p><a:r><a:t>S{i}</a:t></a:r></a:p></sld>')
    facts = document_facts(pptx)
    assert (facts.media_type, facts.page_count) == (PPTX, 3)
    assert facts.text.split() == ["S1", "S2", "S10"]


def test_unparseable_documents_raise(tmp_path: Path, pdf_file: Path) -> None:
    broken_pdf = tmp_path / "broken.pdf"
    broken_pdf.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    with pytest.raises(ProbeFailed, match="unreadable PDF"):
        document_facts(broken_pdf)

    broken_docx = tmp_path / "broken.docx"
    with zipfile.ZipFile(broken_docx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document><unclosed>")
    with pytest.raises(ProbeFailed, match="unreadable office file"):
        document_facts(broken_docx)

    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ProbeFailed, match="not a document type"):
        document_facts(binary)


def test_plain_and_html_text(tmp_path: Path) -> None:
    txt = tmp_path / "note.txt"
    txt.write_text("现场检查笔录\nline two\n", encoding="utf-8")
    facts = document_facts(txt)
    assert facts.media_type == "text/plain" and facts.text.startswith("现场检查笔录")
    html = tmp_path / "page.html"
    html.write_text("<!DOCTYPE html><html><script>x()</script><p>Offer</p></html>")
    facts = document_facts(html)
    assert facts.media_type == "text/html" and facts.text.strip() == "Offer"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "video/mp4"),
        ("a.mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "video/quicktime"),
        ("a.mkv", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
        ("a.webm", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        ("a.avi", b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
        ("a.ts", (b"\x47" + bytes(187)) * 4, "video/mp2t"),
        ("a.mpg", b"\x00\x00\x01\xba\x44", "video/mpeg"),
        ("a.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        ("a.png", b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        ("a.pdf", b"%PDF-1.7\n", "application/pdf"),
        ("a.warc", b"WARC/1.1\r\nWARC-Type: warcinfo\r\n", "application/warc"),
        ("a.warc.gz", gzip.compress(b"WARC/1.0\r\n", mtime=0), "application/warc"),
        ("a.gz", gzip.compress(b"hello", mtime=0), "application/gzip"),
        ("a.html", b"\xef\xbb\xbf  <!doctype html><html>", "text/html"),
        ("a.txt", "plain 文本".encode(), "text/plain"),
        ("a.bin", bytes(range(256)), "application/octet-stream"),
        ("a.dat", b"", "application/octet-stream"),
    ],
)
def test_sniff_media_type(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert sniff_media_type(path) == expected


def test_sniff_zip_and_office(tmp_path: Path, docx_file: Path) -> None:
    assert sniff_media_type(docx_file) == DOCX
    plain = tmp_path / "a.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("readme.txt", "x")
    assert sniff_media_type(plain) == "application/zip"
    # Office kind found from the central directory even when the head does not show it.
    xlsx = tmp_path / "renamed.bin"
    with zipfile.ZipFile(xlsx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>" + "x" * 20000)
        zf.writestr("xl/workbook.xml", "<workbook/>")
    assert sniff_media_type(xlsx) == XLSX


def test_sniff_real_clip(clip: Path) -> None:
    assert sniff_media_type(clip) == "video/mp4"


def test_zip_with_names_not_utf8_is_a_plain_zip_not_an_office_file(tmp_path: Path) -> None:
    from tests.ingest.test_bundles import not_utf8_names_zip

    path = not_utf8_names_zip(tmp_path / "names.zip")
    assert sniff_media_type(path) == "application/zip"
    with pytest.raises(ProbeFailed, match="application/zip is not a document type"):
        document_facts(path)
    # A docx whose extra member's own header names it in bytes that are not UTF-8.
    docx = tmp_path / "report.docx"
    with zipfile.ZipFile(docx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", '<w:document xmlns:w="x"><w:body/></w:document>')
        zf.writestr("docProps/\u00e9\u00e9.xml", "<x/>")
        zf.writestr("docProps/app.xml", "<Properties><Pages>1</Pages></Properties>")
    data = docx.read_bytes()
    docx.write_bytes(data.replace("\u00e9\u00e9.xml".encode(), b"\xff\xfe\xfd\xfc.xml"))
    with pytest.raises(ProbeFailed, match="unreadable office file: a member name is not valid UTF-8"):
        document_facts(docx)


@pytest.mark.parametrize("value, expected", [
    ("D:20260301113000+08'00'", "2026-03-01T11:30:00+08:00"),
    ("D:20260301113000Z", "2026-03-01T11:30:00+00:00"),
    ("D:20260301113000+08'99'", None),  # was read as +09:39: the signing time moved
    ("D:20260301113000+99'00'", None),  # was a ValueError: the document step failed
    ("D:２０２６0301113000Z", None),  # digits of another width are no PDF date
])
def test_a_pdf_signing_time_with_an_impossible_offset_is_no_time(value: str, expected: str | None) -> None:
    """A PDF date's offset of 24 hours or more, or of 60 minutes or more, is no offset: the
    signing time (which can close an action's window) is unknown, not moved and not a crash."""
    from ingest.documents import pdf_date

    moment = pdf_date(value)
    assert (moment.isoformat() if moment else None) == expected


def test_a_docx_page_count_in_other_digits_is_unknown_not_a_failure(tmp_path: Path, docx_file: Path) -> None:
    """``<Pages>²</Pages>`` passed str.isdigit() and failed int(): the document step of such a
    file failed for good (``processing_failed``, "internal error (ValueError)"). It is read as no
    page count; the text is still extracted."""
    odd = tmp_path / "odd.docx"
    with zipfile.ZipFile(docx_file) as src, zipfile.ZipFile(odd, "w") as dst:
        for info in src.infolist():
            if info.filename != "docProps/app.xml":
                dst.writestr(info, src.read(info))
        dst.writestr("docProps/app.xml", '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/'
                                         '2006/extended-properties"><Pages>\u00b2</Pages></Properties>')
    facts = document_facts(odd)
    assert facts.page_count is None and "Interview record" in facts.text
