"""Checks of the seals: CAdES-B-T beside every sealed file, SM2/SM3 with the keys the
sealed export manifest vouches for (or those pinned by the user), and the PAdES-B-T seal
of ``certificate.pdf`` covering the whole file."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .cades import SealReport, verify_detached
from .errors import SigningError, VerificationError
from .layout import (
    CADES_SUFFIX, CERTIFICATE_PDF, EXPORT_MANIFEST, ITEM_MANIFEST_PATTERN, SEALED, SM2_KEYS, SM2_SUFFIX,
)
from .pades import verify_pdf
from .run import Run
from .sm2 import Sm2PublicKey, load_sm2_public_key, verify_sm2


def _cades(run: Run, member: str, data: bytes, seal: bytes) -> SealReport | str:
    key = ("cades", hashlib.sha256(data).hexdigest(), hashlib.sha256(seal).hexdigest())
    if run.cache is not None and key in run.cache.results:
        return run.cache.results[key]  # type: ignore[return-value]
    try:
        report: SealReport | str = verify_detached(
            data=data, seal=seal, trust_roots=run.roots, tsa_trust_roots=run.tsa_roots
        )
    except VerificationError as exc:
        report = exc.reason
    if run.cache is not None:
        run.cache.results[key] = report  # type: ignore[assignment]
    return report


def trusted_sm2_keys(run: Run, manifest_ok: bool, files_ok: set[str]) -> tuple[list[Sm2PublicKey], str]:
    """The SM2 keys to trust, and where they come from (pinned, or vouched for by the sealed manifest)."""
    if run.sm2_pinned is not None:
        return run.sm2_pinned, "the SM2 key given on the command line"
    raw = run.tags.get(SM2_KEYS)
    if raw is None or not manifest_ok or SM2_KEYS not in files_ok:
        return [], "no SM2 key vouched for by a verified export manifest"
    return pem_sm2_keys(raw), f"the SM2 keys in {SM2_KEYS}, vouched for by the CAdES-sealed export manifest"


def pem_sm2_keys(raw: bytes) -> list[Sm2PublicKey]:
    """The SM2 public keys among the PEM blocks of ``raw`` (other blocks are passed over)."""
    keys = []
    for block in re.findall(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----\n?", raw, re.S):
        try:
            keys.append(load_sm2_public_key(block))
        except SigningError:
            continue
    return keys


def check_seals(run: Run) -> tuple[bool, str | None]:
    """CAdES on every ``.p7s``; return whether the export manifest's seal held, and when it was stamped."""
    manifest_ok, sealed_at = False, None
    for name in sorted(n for n in run.tags if n.endswith(CADES_SUFFIX)):
        target = name[: -len(CADES_SUFFIX)]
        if target not in run.tags:
            run.fail("cades", name, f"seals {target}, which is missing or unreadable")
            continue
        report = _cades(run, name, run.tags[target], run.tags[name])
        if isinstance(report, str):
            run.fail("cades", name, f"seal over {target} does not verify: {report}")
            continue
        # Moments in ISO 8601 with their offset: the report shows them in the reader's zone.
        stamped = report.timestamp_time.isoformat(timespec="seconds")
        run.add("cades", name, True, f"{report.signer_subject}; time-stamped {stamped} by {report.tsa_subject}")
        if target == EXPORT_MANIFEST:
            manifest_ok, sealed_at = True, report.timestamp_time.isoformat()
    required = [*SEALED, *sorted(n for n in run.tags if re.fullmatch(ITEM_MANIFEST_PATTERN, n))]
    for target in required:
        for suffix in (CADES_SUFFIX, SM2_SUFFIX):
            if target in run.tags and target + suffix not in run.source.sizes:
                run.fail("cades" if suffix == CADES_SUFFIX else "sm2", target + suffix, f"the seal of {target} is missing")
        if target not in run.source.sizes and target in SEALED:
            run.fail("bag", target, "missing")
    return manifest_ok, sealed_at


def check_sm2(run: Run, keys: list[Sm2PublicKey], source: str) -> None:
    """Every ``.sm2.json`` verifies over the file beside it, with one of ``keys`` (from ``source``)."""
    for name in sorted(n for n in run.tags if n.endswith(SM2_SUFFIX)):
        target = name[: -len(SM2_SUFFIX)]
        if target not in run.tags:
            run.fail("sm2", name, f"seals {target}, which is missing or unreadable")
            continue
        try:
            record = json.loads(run.tags[name])
        except ValueError:
            record = None
        ok, detail = check_sm2_seal(run.tags[target], record, keys, source=source, target=target)
        run.add("sm2", name, ok, detail)


def check_sm2_seal(data: bytes, record: Any, keys: list[Sm2PublicKey], *, source: str, target: str) -> tuple[bool, str]:
    """Whether the SM2 seal ``record`` (parsed JSON) verifies over ``data`` with one of ``keys``; and why."""
    try:
        embedded = load_sm2_public_key(str(record.get("public_key", "")).encode("ascii"))
    except (ValueError, AttributeError, UnicodeEncodeError, SigningError):
        return False, "not an SM2 seal record"
    if embedded not in keys:
        return False, f"made with an SM2 key that is not trusted ({source})"
    try:
        verify_sm2(data=data, seal=record, expected_public_key=embedded)
    except VerificationError as exc:
        return False, f"seal over {target} does not verify: {exc.reason}"
    return True, f"SM2/SM3 key {embedded.fingerprint()[:16]}"


def check_pdf(run: Run) -> None:
    """certificate.pdf carries a valid PAdES-B-T seal, trusted, covering the whole file."""
    name = CERTIFICATE_PDF
    data = run.tags.get(name)
    if data is None:
        if name not in run.unreadable:
            run.fail("pdf", name, "missing")
        return
    key = ("pdf", hashlib.sha256(data).hexdigest())
    cached = run.cache.results.get(key, False) if run.cache is not None else False
    if cached is False:
        try:
            report = verify_pdf(data=data, trust_roots=run.roots, tsa_trust_roots=run.tsa_roots)
            stamped = report.timestamp_time.isoformat(timespec="seconds")
            cached = f"PAdES-B-T by {report.signer_subject}, time-stamped {stamped}"
        except VerificationError as exc:
            cached = "FAIL:" + exc.reason
        if run.cache is not None:
            run.cache.results[key] = cached
    ok = not cached.startswith("FAIL:")
    run.add("pdf", name, ok, cached.removeprefix("FAIL:"))
