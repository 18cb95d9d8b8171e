"""PAdES-B-T seals on PDF copies (and B-LT when revocation data is supplied).

The caller's original is never written: pyHanko reads the source in place and
writes the original bytes followed by the signature, as an incremental update,
to ``output``. The sealed copy is a new object that names its original.

Neither sealing nor verifying holds the document in memory when given files:
pyHanko seeks in the source, copies it to the output in chunks and digests the
signed byte ranges in chunks, so a multi-gigabyte scan costs a few megabytes.
Bytes are still accepted for small documents.
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

import pkcs11
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, Signer
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import errors as validation_errors
from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from .certs import AnyCertificate, sha256_fingerprint, subject_text, to_asn1_certificates
from .errors import SealFailed, TimestampFailed, VerificationError

__all__ = ["PdfSealReport", "PdfSource", "seal_pdf", "verify_pdf"]

PdfSource = bytes | bytearray | memoryview | BinaryIO | os.PathLike
"""A PDF given as bytes, a binary file object, or the path of a file."""

_SPOOL_CHUNK = 1 << 20


@contextlib.contextmanager
def _seekable(source: PdfSource) -> Iterator[BinaryIO]:
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


def seal_pdf(
    *,
    source: PdfSource,
    output: BinaryIO,
    signer: Signer,
    timestamper: TimeStamper,
    field_name: str = "EvidenceSeal",
    reason: str = "Sealed copy of archived evidence",
    location: str | None = None,
    validation_context: ValidationContext | None = None,
) -> None:
    """Write a PAdES-B-T sealed copy of the PDF in ``source`` to ``output``.

    ``source`` is only read (bytes, a binary file or a path). ``output`` should be
    readable and seekable as well as writable (``tempfile.TemporaryFile()``, a file
    opened ``w+b``): pyHanko then writes the copy straight into it and digests it
    from there; a write-only ``output`` makes pyHanko buffer the whole copy in
    memory first. When ``validation_context`` is given, the validation data it
    can supply (certificates, CRLs, OCSP responses it was built with) is
    embedded in a DSS, making the copy PAdES-B-LT. Raises
    :class:`SealFailed` (unreadable PDF, signing failure) or
    :class:`TimestampFailed`; an :class:`OSError` reading ``source`` or writing
    ``output`` is not a signing failure and is left to the caller.
    """
    if timestamper is None:
        raise SealFailed("a time-stamper is required for PAdES-B-T")
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        embed_validation_info=validation_context is not None,
        validation_context=validation_context,
    )
    try:
        with _seekable(source) as stream:
            writer = IncrementalPdfFileWriter(stream, strict=False)
            pdf_signer = PdfSigner(meta, signer=signer, timestamper=timestamper)
            asyncio.run(pdf_signer.async_sign_pdf(writer, output=output))
    except (pkcs11.PKCS11Error, PyHankoSigningError) as exc:
        raise SealFailed(f"sealing the PDF failed: {type(exc).__name__} {exc}") from exc
    except PdfError as exc:
        raise SealFailed(f"the source is not a PDF pyHanko can update: {exc}") from exc
    except TimestampRequestError as exc:
        # pyHanko wraps the TSA's network and protocol failures in this IOError; any other
        # OSError is the caller's own files (a full disk) and propagates as it is.
        raise TimestampFailed(f"time-stamping the PDF seal failed: {exc}") from exc
    except ValueError as exc:
        raise SealFailed(f"sealing the PDF failed: {exc}") from exc


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
    """Number of signatures in the document; every one of them was checked."""


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


async def _verify(stream: BinaryIO, roots, tsa_roots, validation_time) -> PdfSealReport:
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
) -> PdfSealReport:
    """Verify every signature in a PDF and that the last one covers the document.

    Raises :class:`VerificationError` unless each signature is intact, valid,
    trusted (``trust_roots``), carries a trusted signature time-stamp
    (``tsa_trust_roots``, default ``trust_roots``), and the last signature
    covers the whole file (only validation-data updates may follow it).

    ``data`` is the whole PDF: bytes, a binary file object (read from its start,
    not from its current position) or a path. Files are read in place, in chunks;
    an :class:`OSError` reading them is left to the caller (it says nothing about
    the seal).
    """
    roots = to_asn1_certificates(trust_roots)
    if not roots:
        raise VerificationError("no trust roots given: nothing can be trusted")
    tsa_roots = roots if tsa_trust_roots is None else to_asn1_certificates(tsa_trust_roots)
    with _seekable(data) as stream:
        return asyncio.run(_verify(stream, roots, tsa_roots, validation_time))
