"""PDFs made at test time: a blank page, and large ones (one page, one big uncompressed RGB
scan of noise)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter


def blank_pdf() -> bytes:
    """A one-page PDF with a blue square, drawn with pyHanko's writer."""
    writer = PdfFileWriter()
    contents = writer.add_object(generic.StreamObject(stream_data=b"0 0 1 rg 100 100 200 200 re f"))
    writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_scanned_pdf(path: Path, *, side: int) -> int:
    """Write a valid one-page PDF whose page is a ``side`` x ``side`` RGB image; return its size.

    The image is random bytes stored without compression, so the file is about
    ``3 * side**2`` bytes and nothing downstream can shrink it: a stand-in for a
    multi-gigabyte scanned document, at a size a test can afford.
    """
    name = generic.pdf_name
    writer = PdfFileWriter()
    image = writer.add_object(generic.StreamObject(
        {
            name("/Type"): name("/XObject"), name("/Subtype"): name("/Image"),
            name("/Width"): generic.NumberObject(side), name("/Height"): generic.NumberObject(side),
            name("/ColorSpace"): name("/DeviceRGB"), name("/BitsPerComponent"): generic.NumberObject(8),
        },
        stream_data=os.urandom(3 * side * side),
    ))
    contents = writer.add_object(generic.StreamObject(stream_data=b"q 595 0 0 842 0 0 cm /Scan Do Q"))
    resources = generic.DictionaryObject({name("/XObject"): generic.DictionaryObject({name("/Scan"): image})})
    writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842), resources=resources))
    with open(path, "wb") as out:
        writer.write(out)
    return path.stat().st_size


def same_prefix(whole: Path, prefix: Path, *, chunk: int = 1 << 20) -> bool:
    """True when the file ``whole`` begins with every byte of the file ``prefix`` (read in chunks)."""
    with open(whole, "rb") as w, open(prefix, "rb") as p:
        while block := p.read(chunk):
            if w.read(len(block)) != block:
                return False
    return True
