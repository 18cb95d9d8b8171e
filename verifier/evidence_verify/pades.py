"""Verifying PAdES-B-T seals on PDFs (the export's certificate, sealed PDF copies).

Verifying does not hold the document in memory when given a file: pyHanko seeks in
the source and digests the signed byte ranges in chunks, so a multi-gigabyte scan
costs a few megabytes. Bytes are still accepted for small documents.

The server seals with :mod:`signing.pades` and verifies with this module, as a court does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Iterable

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import errors as validation_errors
from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from .certs import AnyCertificate, sha256_fingerprint, subject_text, to_asn1_certificates
from .errors import VerificationError

__all__ = ["PdfSealReport", "PdfSource", "seekable", "verify_pdf"]

PdfSource = bytes | bytearray | memoryview | BinaryIO | os.PathLike
"""A PDF given as bytes, a binary file object, or the path of a file."""

_SPOOL_CHUNK = 1 << 20


@contextlib.contextmanager
def seekable(source: PdfSource) -> Iterator[BinaryIO]:
    """A readable, seekable binary stream over ``source``, without copying it when possible.

    Paths are opened, bytes wrapped; a stream that cannot seek (a pipe, a socket) is
    spooled to a temporary file first, because pyHanko reads the cross-reference
    tables from the end of the file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        with open(source, "rb") as handle:
            yield handle
    elif source.seekable():
        yield source
    else:
        with tempfile.TemporaryFile(prefix="evidence-pdf-") as spool:
            shutil.copyfileobj(source, spool, _SPOOL_CHUNK)
            spool.seek(0)
            yield spool


@dataclass(frozen=True)
class PdfSealReport:
    """What :func:`verify_pdf` established about a sealed PDF."""

    field_name: str
    """Name of the signature field checked (the last signature of the document)."""
    signer_subject: str
    """Subject of the e-seal certificate (RFC 4514)."""
    signer_cert_sha256: str
    """Hex SHA-256 fingerprint of the e-seal certificate."""
    digest_algorithm: str
    """Digest over the signed byte ranges."""
    signature_algorithm: str
    """Signature mechanism, e.g. ``sha256_ecdsa``."""
    timestamp_time: datetime
    """genTime of the trusted signature time-stamp."""
    tsa_subject: str
    """Subject of the TSA certificate."""
    coverage: str
    """``ENTIRE_FILE``, or ``ENTIRE_REVISION`` when only validation data (DSS) follows."""
    signature_count: int
    """Number of signatures in the document; every one of them was checked, but those the
    original of a sealed copy carried (see ``original_size`` of :func:`verify_pdf`)."""


def _status_problem(status) -> str | None:
    if not status.intact:
        return "signed bytes do not match the signature's digest (document altered)"
    if not status.valid:
        return "signature value is invalid"
    if not status.trusted:
        return f"signer certificate is not trusted ({status.trust_problem_indic})"
    ts = status.timestamp_validity
    if ts is None:
        return "no signature time-stamp (PAdES-B-T required)"
    if not (ts.intact and ts.valid):
        return "signature time-stamp is altered or invalid"
    if not ts.trusted:
        return f"time-stamping authority is not trusted ({ts.trust_problem_indic})"
    if status.docmdp_ok is False:
        return "document was modified after sealing beyond validation-data updates (does not cover the whole document)"
    return None


def _signed_end(sig) -> int:
    """Where a signature's signed byte ranges end (0 for a malformed /ByteRange)."""
    try:
        _start, _len1, start2, len2 = (int(x) for x in sig.byte_range)
    except (TypeError, ValueError):
        return 0
    return start2 + len2


async def _verify(stream: BinaryIO, roots, tsa_roots, validation_time, original_size: int) -> PdfSealReport:
    try:
        reader = PdfFileReader(stream, strict=False)
        sigs = list(reader.embedded_regular_signatures)
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"not a readable PDF: {exc}") from exc
    if not sigs:
        raise VerificationError("PDF carries no signature")

    def context(anchors):
        return ValidationContext(trust_roots=anchors, allow_fetching=False, moment=validation_time)

    last = None
    for sig in sigs:
        if original_size and sig is not sigs[-1] and 0 < _signed_end(sig) <= original_size:
            continue  # the original's own signature, kept byte for byte: not ours to judge
        try:
            status = await async_validate_pdf_signature(
                sig, signer_validation_context=context(roots), ts_validation_context=context(tsa_roots)
            )
        except validation_errors.SignatureValidationError as exc:
            raise VerificationError(f"signature {sig.field_name!r} could not be validated: {exc.failure_message}") from exc
        except (PdfError, ValueError, KeyError, TypeError, AttributeError, NotImplementedError) as exc:
            raise VerificationError(f"signature {sig.field_name!r} is structurally broken: {exc}") from exc
        problem = _status_problem(status)
        if problem:
            raise VerificationError(f"signature {sig.field_name!r}: {problem}")
        last = (sig, status)
    sig, status = last
    coverage = status.coverage
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        pass
    elif coverage == SignatureCoverageLevel.ENTIRE_REVISION and status.modification_level is not None \
            and status.modification_level <= ModificationLevel.LTA_UPDATES:
        pass  # only DSS / document time-stamp updates follow the signature
    else:
        raise VerificationError(
            f"signature {sig.field_name!r} does not cover the whole document "
            f"(coverage {coverage.name if coverage else 'unknown'}, "
            f"later changes {status.modification_level.name if status.modification_level else 'unknown'})"
        )
    ts = status.timestamp_validity
    return PdfSealReport(
        field_name=sig.field_name,
        signer_subject=subject_text(status.signing_cert),
        signer_cert_sha256=sha256_fingerprint(status.signing_cert),
        digest_algorithm=status.md_algorithm,
        signature_algorithm=status.pkcs7_signature_mechanism,
        timestamp_time=ts.timestamp,
        tsa_subject=subject_text(ts.signing_cert),
        coverage=coverage.name,
        signature_count=len(sigs),
    )


def verify_pdf(
    *,
    data: PdfSource,
    trust_roots: Iterable[AnyCertificate],
    tsa_trust_roots: Iterable[AnyCertificate] | None = None,
    validation_time: datetime | None = None,
    original_size: int = 0,
) -> PdfSealReport:
    """Verify every signature in a PDF and that the last one covers the document.

    Raises :class:`VerificationError` unless each signature is intact, valid,
    trusted (``trust_roots``), carries a trusted signature time-stamp
    (``tsa_trust_roots``, default ``trust_roots``), and the last signature
    covers the whole file (only validation-data updates may follow it).

    ``original_size``: the PDF is a sealed copy of an original of that many bytes (which
    the caller has compared with the copy's beginning). Signatures the original carried
    (someone else's e-seal on an uploaded document) are its own, kept byte for byte, and
    need not be trusted here: only the signatures the copy added are checked, the last of
    them always.

    ``data`` is the whole PDF: bytes, a binary file object (read from its start,
    not from its current position) or a path. Files are read in place, in chunks;
    an :class:`OSError` reading them is left to the caller (it says nothing about
    the seal).
    """
    roots = to_asn1_certificates(trust_roots)
    if not roots:
        raise VerificationError("no trust roots given: nothing can be trusted")
    tsa_roots = roots if tsa_trust_roots is None else to_asn1_certificates(tsa_trust_roots)
    with seekable(data) as stream:
        return asyncio.run(_verify(stream, roots, tsa_roots, validation_time, original_size))
