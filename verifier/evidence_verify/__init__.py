"""The offline verifier of certified evidence exports, for courts and prosecutors.

Install it alone (``pip install ./verifier``) and run
``evidence-verify EXPORT.zip --trust ROOT.pem``; or call :func:`verify_export`, which
returns the report only when every check holds and raises :class:`ExportInvalid`
(naming each failing member) otherwise. It imports nothing of the server; the server
imports the export format (:mod:`.layout`), the ledger entry format
(:mod:`.ledger_format`), the Merkle proof checks (:mod:`.merkle`) and seal verification
(:mod:`.cades`, :mod:`.pades`, :mod:`.sm2`) from here, so they are written once.
"""

from .check import check_export, verify_export
from .errors import ExportUnreadable, KeyUnavailable, SigningError, VerificationError
from .report import ExportInvalid, ExportReport, Finding, SealCache, summarise

__all__ = [
    "ExportInvalid", "ExportReport", "ExportUnreadable", "Finding", "KeyUnavailable", "SealCache", "SigningError",
    "VerificationError", "check_export", "summarise", "verify_export",
]
