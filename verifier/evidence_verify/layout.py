"""The certified export's format: its layout, member names and fixed texts, in one place.

The server writes exports with these names (``archive.exports``) and the verifier reads
them back with the same ones, so the two cannot drift apart. The layout of the bag
(RFC 8493)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt
    data/originals/<item-id>/<safe original name>
    data/derived/<item-id>/<role>.<ext>                 (only when asked)
    items/<item-id>/manifest.json (+ .p7s CAdES DER, + .sm2.json)
    ledger/entries.jsonl  ledger/checkpoint.json (+ .p7s, + .sm2.json)
    continuity/report.json (+ .p7s, + .sm2.json)
    trust/chain.pem  trust/tsa.pem  trust/sm2-public.pem
    certificate.pdf                                    (PAdES-B-T)
    export-manifest.json (+ .p7s, + .sm2.json)         every file above, with SHA-256
    tagmanifest-sha256.txt  tagmanifest-sha512.txt

Every detached seal sits beside the file it seals, named ``<file>.p7s`` / ``<file>.sm2.json``.
"""

from __future__ import annotations

EXPORT_FORMAT = "evidence-export/1"
"""The ``format`` of the export manifest."""

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
"""The exact ``bagit.txt`` this format writes."""

ALGORITHMS = {"sha256": 64, "sha512": 128}
"""Digest algorithms of the payload and tag manifests, with the length of their hex digests."""

PAYLOAD_DIR = "data/"
"""Prefix of every payload member (the originals and derived files)."""

BAGIT = "bagit.txt"
BAG_INFO = "bag-info.txt"
EXPORT_MANIFEST = "export-manifest.json"
LEDGER_ENTRIES = "ledger/entries.jsonl"
CHECKPOINT = "ledger/checkpoint.json"
CONTINUITY_REPORT = "continuity/report.json"
SM2_KEYS = "trust/sm2-public.pem"
CERTIFICATE_PDF = "certificate.pdf"

CADES_SUFFIX = ".p7s"
"""Suffix of the detached CAdES-B-T seal beside the file it seals."""
SM2_SUFFIX = ".sm2.json"
"""Suffix of the SM2/SM3 seal record beside the file it seals."""

SEALED = (EXPORT_MANIFEST, CHECKPOINT, CONTINUITY_REPORT)
"""Files that must carry both seals (item manifests too)."""

ITEM_MANIFEST_PATTERN = r"items/[^/]+/manifest\.json"
"""Full-match pattern of an item manifest (sealed at ingest)."""


def item_manifest(item_id: str) -> str:
    """Path of the sealed manifest of one item."""
    return f"items/{item_id}/manifest.json"


def payload_manifest(algorithm: str) -> str:
    """Path of the payload manifest for ``algorithm`` (``manifest-sha256.txt``)."""
    return f"manifest-{algorithm}.txt"


def tag_manifest(algorithm: str) -> str:
    """Path of the tag manifest for ``algorithm`` (``tagmanifest-sha256.txt``)."""
    return f"tagmanifest-{algorithm}.txt"


# The sealed case archive record, written when a case closes (``archive.cases.closing``)::
#
#     record.json            the record (canonical JSON, format CASE_ARCHIVE_FORMAT)
#     record.json.p7s        its detached CAdES-B-T seal (DER)
#     record.json.sm2.json   its SM2/SM3 seal
#
# ``evidence-verify`` checks a directory or ZIP holding these three (or the record's path).

CASE_ARCHIVE_FORMAT = "evidence-case-archive/1"
"""The ``format`` of a case archive record."""
CASE_ARCHIVE_RECORD = "record.json"
"""Name of the case archive record; its seals sit beside it (:data:`CADES_SUFFIX`, :data:`SM2_SUFFIX`)."""
LEGAL_REVIEW_FORMAT = "evidence-legal-review/1"
"""The ``format`` of a sealed legal review record (carried inside the case archive record)."""
