"""Checking a certified export: no server, no database, no settings.

A court runs ``evidence-verify EXPORT.zip --trust ROOT.pem`` on its own machine. This
checks, and names every member that fails:

* the bag (RFC 8493): ``bagit.txt``, ``Payload-Oxum``, both payload manifests and both
  tag manifests, strictly parsed — every file listed, nothing extra, nothing missing,
  every hash equal (:mod:`.bagcheck`);
* every detached seal beside the file it seals: CAdES-B-T ``<file>.p7s`` (signature,
  e-seal chain to ``--trust``, RFC 3161 time-stamp) and SM2 ``<file>.sm2.json`` (with the
  SM2 keys the CAdES-sealed export manifest vouches for, or one given with ``--sm2-key``),
  and ``certificate.pdf``'s PAdES-B-T seal covering the whole file (:mod:`.seals`);
* the sealed export manifest: every file of the bag with its SHA-256 and size; each item
  manifest (sealed at ingest) states the SHA-256 and size of its original; each custody
  entry recomputes to its hash, consecutive entries chain, and each has an RFC 9162
  inclusion proof against the sealed checkpoint's root; every item's
  ``evidence_received`` entry states the item's hash (:mod:`.records`).

:func:`check_export` returns the full list of findings; :func:`verify_export` returns the
report only when everything holds and raises :class:`ExportInvalid` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .bagcheck import check_bagit, check_manifests, hash_all
from .certs import load_roots
from .errors import ExportUnreadable
from .layout import EXPORT_MANIFEST, PAYLOAD_DIR
from .records import check_export_manifest, check_items, check_ledger, read_json
from .report import ExportInvalid, ExportReport, SealCache
from .run import Run
from .seals import check_pdf, check_seals, check_sm2, trusted_sm2_keys
from .sm2 import load_sm2_public_key
from .source import open_source

__all__ = ["check_export", "verify_export"]


def check_export(
    path: Path | str, *, trust: Iterable[Path | str], tsa_trust: Iterable[Path | str] | None = None,
    sm2_keys: Iterable[Path | str] | None = None, cache: SealCache | None = None,
) -> ExportReport:
    """Check an export and return every finding.

    ``path`` is the export's ZIP file, its unpacked bag directory, the directory holding
    only that bag, or ``.`` inside it. ``trust`` are PEM files of the roots the court
    trusts for e-seals (and, unless ``tsa_trust`` is given, for time-stamps). ``sm2_keys``
    pins the SM2 public keys; without it, the keys vouched for by the CAdES-sealed export
    manifest are used. Raises :class:`~.errors.SigningError` (a trust file or SM2 key
    that cannot be read, an export that is no ZIP and no directory) or :class:`OSError`.
    """
    path = Path(path)
    roots = load_roots(trust)
    if not roots:
        raise ExportUnreadable("no trust roots given: nothing can be trusted")
    tsa_roots = load_roots(tsa_trust) if tsa_trust else None
    pinned = [load_sm2_public_key(Path(p).read_bytes()) for p in sm2_keys] if sm2_keys else None
    source = open_source(path)
    try:
        run = Run(source=source, roots=roots, tsa_roots=tsa_roots, sm2_pinned=pinned, cache=cache)
        run.findings.extend(source.problems)
        hash_all(run)
        check_bagit(run)
        check_manifests(run)
        manifest_ok, sealed_at = check_seals(run)
        manifest = read_json(run, EXPORT_MANIFEST, "export-manifest")
        files_ok = check_export_manifest(run, manifest) if manifest is not None else set()
        manifest = manifest if isinstance(manifest, dict) else {}
        keys, key_source = trusted_sm2_keys(run, manifest_ok, files_ok)
        check_sm2(run, keys, key_source)
        items = check_items(run, manifest)
        tree_size = check_ledger(run, manifest, items)
        check_pdf(run)
        payload = sum(v for k, v in source.sizes.items() if k.startswith(PAYLOAD_DIR))
        return ExportReport(
            source=source.label, bag=source.bag, files=len(source.sizes), payload_bytes=payload,
            findings=tuple(run.findings), case_number=(manifest.get("case") or {}).get("number"),
            export_id=manifest.get("export"), checkpoint_tree_size=tree_size, sealed_at=sealed_at,
            warnings=tuple(run.warnings),
        )
    finally:
        source.close()


def verify_export(path: Path | str, **kwargs: Any) -> ExportReport:
    """Like :func:`check_export`, but raise :class:`ExportInvalid` unless every check holds."""
    report = check_export(path, **kwargs)
    if not report.ok:
        raise ExportInvalid(report)
    return report
