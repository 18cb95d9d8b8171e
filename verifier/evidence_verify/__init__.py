"""The offline verifier of certified evidence exports, for courts and prosecutors.

Install it alone (``pip install ./verifier``) and run
``evidence-verify EXPORT.zip --trust ROOT.pem``; or call :func:`verify_export`, which
returns the report only when every check holds and raises :class:`ExportInvalid`
(naming each failing member) otherwise. A sealed case archive record (``record.json`` with
its seals, written when a case closes) is checked the same way: :func:`check_case_archive`. It imports nothing of the server; the server
imports the export format (:mod:`.layout`), the ledger entry format
(:mod:`.ledger_format`), the Merkle proof checks (:mod:`.merkle`) and seal verification
(:mod:`.cades`, :mod:`.pades`, :mod:`.sm2`) from here, so they are written once.
"""

from .case_archive import CaseArchiveReport, check_case_archive, is_case_archive
from .check import check_export, verify_export
from .errors import ExportUnreadable, KeyUnavailable, SigningError, VerificationError
from .report import ExportInvalid, ExportReport, Finding, SealCache, summarise

__all__ = [
    "CaseArchiveReport", "check_case_archive", "is_case_archive", "ExportInvalid", "ExportReport", "ExportUnreadable", "Finding", "KeyUnavailable", "SealCache", "SigningError",
    "VerificationError", "check_export", "summarise", "verify_export",
]
