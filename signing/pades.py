"""PAdES-B-T seals on PDF copies (and B-LT when revocation data is supplied).

The caller's original is never written: pyHanko reads the source in place and
writes the original bytes followed by the signature, as an incremental update,
to ``output``. The sealed copy is a new object that names its original.

Neither sealing nor verifying holds the document in memory when given files:
pyHanko seeks in the source, copies it to the output in chunks and digests the
signed byte ranges in chunks, so a multi-gigabyte scan costs a few megabytes.
Bytes are still accepted for small documents.

Verification is the offline verifier's (:mod:`evidence_verify.pades`), the same code a
court runs; its names are re-exported here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import BinaryIO

import pkcs11
from evidence_verify.pades import PdfSealReport, PdfSource, seekable, verify_pdf
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, Signer
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator import ValidationContext

from .errors import REASONS, SealFailed, TimestampFailed

__all__ = ["PdfSealReport", "PdfSource", "seal_pdf", "verify_pdf"]


def unused_field_name(writer: IncrementalPdfFileWriter, base: str) -> str:
    """``base``, or ``base2``, ``base3``... : the first name no signed field of the PDF has.

    A PDF that already carries a signature in a field of that name (our inspection record,
    signed when made; a copy sealed before) is sealed in a new field, by an incremental
    update that leaves the earlier signatures valid; an empty field of that name is used.
    """
    taken = {name for name, _value, _ref in fields.enumerate_sig_fields(writer, filled_status=True)}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


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
        with seekable(source) as stream:
            writer = IncrementalPdfFileWriter(stream, strict=False)
            meta = dataclasses.replace(meta, field_name=unused_field_name(writer, field_name))
            pdf_signer = PdfSigner(meta, signer=signer, timestamper=timestamper)
            asyncio.run(pdf_signer.async_sign_pdf(writer, output=output))
    except (pkcs11.PKCS11Error, PyHankoSigningError) as exc:
        raise SealFailed(REASONS["seal_pdf"].format(detail=f"{type(exc).__name__} {exc}")) from exc
    except PdfError as exc:
        raise SealFailed(REASONS["not_pdf"].format(detail=exc)) from exc
    except TimestampRequestError as exc:
        # pyHanko wraps the TSA's network and protocol failures in this IOError; any other
        # OSError is the caller's own files (a full disk) and propagates as it is.
        raise TimestampFailed(REASONS["timestamp_pdf"].format(detail=exc)) from exc
    except ValueError as exc:
        raise SealFailed(REASONS["seal_pdf"].format(detail=exc)) from exc
