"""PAdES-B-T sealed copies of PDF originals.

PAdES level: the copy is PAdES-B-T. B-LT needs revocation data (CRLs or OCSP responses)
for the e-seal and TSA certificates; the development PKI publishes none, so there is
nothing to embed and we do not pretend otherwise. A production CA with CRL/OCSP would
allow B-LT via :func:`signing.seal_pdf`'s ``validation_context``.

A PDF is never held in memory while its PAdES copy is made or checked: the original is
spooled from the store to a temporary file (hashed on the way), pyHanko reads that file
and writes the copy to another one, the copy is compared with the original and stored
in chunks. A multi-gigabyte scan costs disk space in the worker's temporary directory,
not memory.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import signing
from archive.errors import VerificationFailed
from archive.seals.errors import SealingFailed, TimestampUnavailable
from archive.seals.sealer import Sealer
from archive.storage import ObjectStore
from archive.storage.streams import Content, chunks_of, spool, spool_existing, starts_with
from archive.wording import Sentences

COPY_PROBLEMS = Sentences("pades_problem", {
    "original_changed": "stored original of item {item} no longer matches its sha256; not sealing a copy",
    "earlier_invalid": "an earlier, invalid PAdES copy sits at {key}",
    "not_incremental": "PAdES copy: does not begin with the original's bytes (not an incremental update)",
}, fields={"item": r"\S+", "key": r"\S+"})
"""Why a PDF original's PAdES copy is not made or does not hold (a sealing step's reason, an
item check's detail)."""


def temporary_file() -> BinaryIO:
    # Unnamed and removed on close, even when the worker is killed: nothing to clean up.
    # A PDF needs twice its size here (original and copy), in TMPDIR.
    return tempfile.TemporaryFile(prefix="evidence-seal-")



def pades_copy(
    *, store: ObjectStore, sealer: Sealer, item_id: str, key: str, snapshot: dict[str, Any],
    files: contextlib.ExitStack,
) -> tuple[BinaryIO | None, str | None]:
    """The checked PAdES copy of a PDF original as a temporary file, or why there is none.

    Returns ``(None, None)`` for an original that is not a PDF and ``(None, problem)``
    for a PDF pyHanko cannot update. The temporary files live as long as ``files``.
    """
    original = files.enter_context(temporary_file())
    spooled = spool(store.read(snapshot["key"], version_id=snapshot["version"]), original, "sha256")
    if spooled.hexdigest("sha256") != snapshot["sha256"] or spooled.size != snapshot["size"]:
        raise VerificationFailed(
            COPY_PROBLEMS.say("original_changed", item=item_id),
            code="fixity_failed",
        )
    if original.read(5) != b"%PDF-":
        return None, None
    copy = files.enter_context(temporary_file())
    if spool_existing(store, key, copy):
        try:
            check_pades_copy(sealer, original, copy)
        except VerificationFailed as exc:
            raise SealingFailed(COPY_PROBLEMS.say("earlier_invalid", key=key)) from exc
        return copy, None
    try:
        sealer.seal_pdf(original, copy)
    except TimestampUnavailable:
        raise
    except SealingFailed as exc:
        # A PDF pyHanko cannot update is still evidence; it just gets no sealed copy.
        return None, exc.message
    check_pades_copy(sealer, original, copy)
    return copy, None


def check_pades_copy(sealer: Sealer, original: Content, copy: bytes | BinaryIO) -> signing.PdfSealReport:
    """A PAdES copy must validate and must be an incremental update of the original bytes.

    ``original`` is bytes, a seekable binary file or the chunks of a store read;
    ``copy`` is bytes or a seekable binary file. Both are compared by streaming and
    the copy is validated in place, so neither is loaded into memory.
    """
    size = 0

    def counted() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks_of(original):
            size += len(chunk)
            yield chunk

    if not starts_with(copy, counted()):
        raise VerificationFailed(COPY_PROBLEMS.say("not_incremental"), code="seal_invalid")
    # The signatures the original carried (someone else's e-seal on an uploaded document)
    # are its own; the copy's are ours and must hold.
    return sealer.verify_pdf(copy, original_size=size)
