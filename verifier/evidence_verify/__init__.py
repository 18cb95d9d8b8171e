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

from __future__ import annotations

from .lazy import lazy_names

# The public names are loaded when first asked for (PEP 562): the server imports the small
# modules above (the Merkle proofs, the export layout) and must not pull in the whole
# verifier with pyHanko and its certificate validation (8 MB of each API process, measured).
_WHERE = {
    "CaseArchiveReport": "case_archive", "check_case_archive": "case_archive", "is_case_archive": "case_archive",
    "check_export": "check", "verify_export": "check",
    "ExportUnreadable": "errors", "KeyUnavailable": "errors", "SigningError": "errors", "VerificationError": "errors",
    "ExportInvalid": "report", "ExportReport": "report", "Finding": "report", "SealCache": "report",
    "summarise": "report",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_names(__name__, _WHERE, globals())
