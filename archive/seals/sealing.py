"""E-seals for the archive: item manifests, PDF copies and ledger checkpoints.

This module wires the pure cryptography of :mod:`signing` into the service:

* :class:`Sealer` (built by :func:`get_sealer`) knows where the e-seal key lives (the
  development PKI, key files, or a PKCS#11 token), where time-stamps come from (an
  external RFC 3161 TSA, or the built-in one in development), and which roots to trust;
* :func:`seal_item` seals an item's canonical manifest with a detached CAdES-B-T seal and
  an SM2/SM3 seal, stores manifest and seals in the item's vault as derived objects
  (roles ``manifest``, ``cades``, ``sm2``), and gives PDFs a PAdES-B-T sealed copy (role
  ``pades``);
* :func:`create_checkpoint` seals the custody ledger's Merkle tree head;
  :func:`verify_checkpoints` checks every checkpoint against the current ledger.

PAdES level: the copy is PAdES-B-T. B-LT needs revocation data (CRLs or OCSP responses)
for the e-seal and TSA certificates; the development PKI publishes none, so there is
nothing to embed and we do not pretend otherwise. A production CA with CRL/OCSP would
allow B-LT via :func:`signing.seal_pdf`'s ``validation_context``.

A PDF is never held in memory while its PAdES copy is made or checked: the original is
spooled from the store to a temporary file (hashed on the way), pyHanko reads that file
and writes the copy to another one, the copy is compared with the original and stored
in chunks. A multi-gigabyte scan costs disk space in the worker's temporary directory,
not memory.

Every certificate or SM2 key that seals or time-stamps is recorded in the
``certificates`` table at first use and kept forever, so seals made before a key
rotation still name a published certificate.

Errors: signing failures are translated to :class:`SealingFailed` /
:class:`TimestampUnavailable`; a seal that does not verify raises
:class:`archive.errors.VerificationError` naming what failed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from sqlalchemy import select, text
from sqlalchemy.orm import Session

import signing
from archive.custody import ledger
from archive.custody import merkle
from archive.db import Database, insert_ignoring_duplicates
from archive.errors import ArchiveError, ConfigurationError, NotFound, ObjectExists, VerificationError
from archive.evidence.items import HashingStream, derived_key, lock_item
from archive.models import (
    Case,
    Checkpoint,
    DerivedObject,
    EvidenceItem,
    EvidenceKind,
    LedgerEntry,
    TrustedCertificate,
    User,
    Vault,
    utcnow,
)
from archive.settings import Settings
from archive.storage import CHUNK, ObjectStore, StoredObject
from signing import certs as signing_certs
from signing import sm2 as signing_sm2

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "evidence-item-manifest/1"
CHECKPOINT_FORMAT = "evidence-ledger-checkpoint/1"
SEAL_ROLES = ("manifest", "cades", "sm2")
"""Derived-object roles every sealed item has."""


class SealingFailed(ArchiveError):
    """A seal could not be made (key unavailable, token error, unreadable PDF...)."""

    code = "seal_failed"
    status = 503


class TimestampUnavailable(SealingFailed):
    """The time-stamping authority refused or could not be reached."""

    code = "timestamp_unavailable"
    transient = True


class SealNotReady(ArchiveError):
    """The item cannot be sealed yet (its SM3 hash is not known, or it changed meanwhile)."""

    code = "seal_not_ready"
    status = 409
    transient = True


def _utc_text(moment: datetime | None) -> str | None:
    return ledger.iso_utc(moment) if moment is not None else None


# --------------------------------------------------------------------------- sealer


@dataclass(frozen=True)
class SealBundle:
    """The two seals over one byte string."""

    cades: bytes
    """DER detached CAdES-B-T CMS signature."""
    sm2: dict[str, Any]
    """JSON-able SM2/SM3 seal record (see :func:`signing.sm2_seal`)."""

    def sm2_json(self) -> bytes:
        """The SM2 seal as stored: canonical JSON, UTF-8."""
        return ledger.canonical_json(self.sm2).encode()


@dataclass(frozen=True)
class SealVerification:
    """What :meth:`Sealer.verify_seal` established."""

    cades: signing.SealReport
    """Signer, chain, signing time, time-stamp time and TSA of the CAdES seal."""
    sm2: signing.Sm2Report
    """Key fingerprint and distinguishing id of the SM2 seal."""


@contextlib.contextmanager
def _keys_lock(directory: Path) -> Iterator[None]:
    """Serialise creation, rotation and loading of the development PKI across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_development_keys(settings: Settings) -> tuple[signing.DevPKI, bool]:
    """Create (once) and return the development PKI under ``settings.resolved_keys_dir``.

    Only in development mode; creation is announced with a loud warning, because seals
    made with it prove nothing to anyone outside this machine.
    """
    if settings.mode != "development":
        raise ConfigurationError("the development PKI is refused in production mode; configure the seal keys")
    directory = settings.resolved_keys_dir
    try:
        with _keys_lock(directory):
            pki, created = signing.ensure_dev_pki(directory)
    except signing.SigningError as exc:
        raise ConfigurationError(f"development PKI unusable: {exc.reason}") from exc
    if created:
        log.warning(
            "!!! DEVELOPMENT PKI CREATED in %s: a self-made root CA, e-seal and TSA with keys in plain "
            "files. Seals made with it are for development and tests only; production must configure "
            "the organisation's own keys (EVIDENCE_SEAL_KEY or EVIDENCE_PKCS11_*) and an external TSA. !!!",
            directory,
        )
    return pki, created


class Sealer:
    """Seals bytes and PDFs with the configured e-seal key, TSA and SM2 key; verifies seals.

    Build it with :func:`get_sealer`. The key is opened lazily at the first seal, so
    processes that only publish certificates or serve the TSA never touch the token.
    Thread-safe: a PKCS#11 session is used by one thread at a time.
    """

    def __init__(self, settings: Settings):
        """Resolve where keys, certificates and time-stamps come from (no key opened yet)."""
        self.settings = settings
        self.dev: signing.DevPKI | None = None
        if settings.pkcs11_module:
            self.source = "pkcs11"
        elif settings.seal_key:
            self.source = "files"
        elif settings.mode == "development":
            self.source = "development"
            self.dev, _ = ensure_development_keys(settings)
        else:
            raise ConfigurationError("no e-seal key configured (EVIDENCE_SEAL_KEY or EVIDENCE_PKCS11_MODULE)")
        if not settings.tsa_url and settings.mode != "development":
            raise ConfigurationError("production needs an external TSA (EVIDENCE_TSA_URL)")
        self._sign_lock: contextlib.AbstractContextManager = (
            threading.Lock() if self.source == "pkcs11" else contextlib.nullcontext()
        )

    # Where things are -----------------------------------------------------------------

    def _chain_paths(self) -> list[Path]:
        if self.dev is not None:
            return [self.dev.root_cert]
        return [self.settings.seal_chain] if self.settings.seal_chain else []

    def stamp(self) -> tuple:
        """Identifies the key material on disk; :func:`get_sealer` rebuilds when it changes (rotation)."""
        path = self.dev.seal_cert if self.dev else (self.settings.seal_cert or self.settings.seal_key)
        try:
            st = Path(path).stat() if path else None
        except OSError:
            return (None,)
        return (str(path), st.st_mtime_ns, st.st_size) if st else (None,)

    @cached_property
    def signer(self):  # type: ignore[no-untyped-def]
        """The pyHanko signer for the e-seal key (key file or PKCS#11 token)."""
        s = self.settings
        try:
            if self.source == "pkcs11":
                return signing.signer_from_pkcs11(
                    module_path=s.pkcs11_module, token_label=s.pkcs11_token_label or "",
                    pin=s.pkcs11_pin.get_secret_value() if s.pkcs11_pin else "",
                    key_label=s.pkcs11_key_label or "", cert_path=s.seal_cert, chain_paths=self._chain_paths(),
                )
            if self.source == "files":
                return signing.signer_from_files(
                    key_path=s.seal_key, cert_path=s.seal_cert, chain_paths=self._chain_paths(),
                    passphrase=s.seal_key_passphrase.get_secret_value() if s.seal_key_passphrase else None,
                )
            assert self.dev is not None
            with _keys_lock(self.dev.directory):
                return signing.signer_from_files(
                    key_path=self.dev.seal_key, cert_path=self.dev.seal_cert, chain_paths=self._chain_paths()
                )
        except signing.SigningError as exc:
            raise SealingFailed(f"e-seal key unavailable ({self.source}): {exc.reason}") from exc

    @cached_property
    def builtin_tsa(self) -> signing.TimeStampAuthority | None:
        """The built-in RFC 3161 TSA: the development one, or a production one when ``serve_tsa``."""
        try:
            if self.dev is not None:
                return signing.TimeStampAuthority.from_files(cert_path=self.dev.tsa_cert, key_path=self.dev.tsa_key)
            if self.settings.serve_tsa and self.settings.tsa_cert and self.settings.tsa_key:
                return signing.TimeStampAuthority.from_files(
                    cert_path=self.settings.tsa_cert, key_path=self.settings.tsa_key
                )
        except signing.SigningError as exc:
            raise ConfigurationError(f"built-in TSA unusable: {exc.reason}") from exc
        return None

    @cached_property
    def timestamper(self):  # type: ignore[no-untyped-def]
        """External TSA over HTTP when ``tsa_url`` is set, else the built-in TSA in-process."""
        if self.settings.tsa_url:
            return signing.http_timestamper(self.settings.tsa_url)
        if self.builtin_tsa is None:
            raise ConfigurationError("no time-stamping authority configured (EVIDENCE_TSA_URL)")
        return signing.local_timestamper(self.builtin_tsa)

    @cached_property
    def sm2_key(self) -> signing_sm2.Sm2PrivateKey:
        """The SM2 private key."""
        path = self.dev.sm2_key if self.dev else self.settings.sm2_key
        if path is None:
            raise SealingFailed("no SM2 key configured (EVIDENCE_SM2_KEY)")
        try:
            return signing_sm2.load_sm2_private_key(Path(path))
        except (signing.SigningError, OSError) as exc:
            raise SealingFailed(f"SM2 key {path} unavailable: {exc}") from exc

    @cached_property
    def sm2_cert_pem(self) -> str | None:
        """The SM2 certificate carried in SM2 seals, if configured."""
        if self.settings.sm2_cert:
            return Path(self.settings.sm2_cert).read_text("ascii")
        return None

    def trust_roots(self) -> list[asn1_x509.Certificate]:
        """Trust anchors for the e-seal and the TSA."""
        path = self.dev.root_cert if self.dev else self.settings.trust_roots
        if path is None:
            raise ConfigurationError("no trust roots configured (EVIDENCE_TRUST_ROOTS)")
        try:
            return signing_certs.to_asn1_certificates(signing_certs.load_certificates(path))
        except signing.SigningError as exc:
            raise ConfigurationError(f"trust roots unusable: {exc.reason}") from exc

    def _local_certificates(self) -> list[tuple[str, asn1_x509.Certificate]]:
        """(role, certificate) for every certificate this configuration knows of without a database."""
        out: list[tuple[str, asn1_x509.Certificate]] = [("root", c) for c in self.trust_roots()]
        paths: list[Path] = []
        if self.dev is not None:
            paths += sorted(self.dev.seal_certs_dir.glob("seal-*.pem")) or [self.dev.seal_cert]
        else:
            paths += [p for p in (self.settings.seal_cert, self.settings.previous_seal_certs) if p]
        for p in paths:
            out += [("seal", signing_certs.to_asn1_certificate(c)) for c in signing_certs.load_certificates(p)]
        if self.source in ("pkcs11", "files") and not self.settings.seal_cert:
            out.append(("seal", self.signer.signing_cert))
        if self.builtin_tsa is not None:
            out.append(("tsa", self.builtin_tsa.certificate))
        return out

    def chain_pem(self) -> bytes:
        """PEM bundle: root CA(s), every e-seal certificate known here (retired ones too), TSA.

        :func:`published_chain_pem` adds the certificates recorded in the database
        (an external TSA's, certificates of earlier configurations).
        """
        return _pem_bundle(self._local_certificates())

    # Sealing ------------------------------------------------------------------------

    def seal(self, data: bytes, *, timestamp: bool = True) -> SealBundle:
        """Seal ``data``: detached CAdES-B-T (with RFC 3161 token) and SM2/SM3.

        ``timestamp=False`` makes a CAdES-B-B seal, which :meth:`verify_seal` refuses;
        it exists for benchmarks. Raises :class:`SealingFailed` or
        :class:`TimestampUnavailable`.
        """
        try:
            with self._sign_lock:
                cades = signing.seal_detached(
                    data=data, signer=self.signer, timestamper=self.timestamper if timestamp else None
                )
            sm2 = signing.sm2_seal(data=data, private_key=self.sm2_key, certificate_pem=self.sm2_cert_pem)
        except signing.TimestampFailed as exc:
            raise TimestampUnavailable(f"time-stamping failed: {exc.reason}") from exc
        except signing.SigningError as exc:
            raise SealingFailed(f"sealing failed: {exc.reason}") from exc
        return SealBundle(cades=cades, sm2=sm2)

    def seal_pdf(self, source: signing.pades.PdfSource, output: BinaryIO) -> None:
        """Write a PAdES-B-T sealed copy of the PDF ``source`` to ``output`` (source only read).

        Give files (``output`` readable and seekable, e.g. ``tempfile.TemporaryFile()``)
        for anything large: see :func:`signing.seal_pdf`.
        """
        try:
            with self._sign_lock:
                signing.seal_pdf(source=source, output=output, signer=self.signer, timestamper=self.timestamper)
        except signing.TimestampFailed as exc:
            raise TimestampUnavailable(f"time-stamping the PDF seal failed: {exc.reason}") from exc
        except signing.SigningError as exc:
            raise SealingFailed(f"PAdES sealing failed: {exc.reason}") from exc

    # Verifying ----------------------------------------------------------------------

    def sm2_public_keys(self) -> list[signing_sm2.Sm2PublicKey]:
        """SM2 public keys this configuration trusts (the current one)."""
        return [self.sm2_key.public_key]

    def verify_cades(self, data: bytes, cades: bytes) -> signing.SealReport:
        """Verify a detached CAdES-B-T seal over ``data``; raise VerificationError naming what failed."""
        try:
            return signing.verify_detached(data=data, seal=cades, trust_roots=self.trust_roots())
        except signing.VerificationError as exc:
            raise VerificationError(f"CAdES seal: {exc.reason}", code="seal_invalid") from exc

    def verify_sm2(
        self, data: bytes, seal: dict[str, Any], *, known_keys: Iterable[signing_sm2.Sm2PublicKey] = ()
    ) -> signing.Sm2Report:
        """Verify an SM2 seal made with one of our SM2 keys (current or ``known_keys``)."""
        if not isinstance(seal, dict):
            raise VerificationError("SM2 seal: not a JSON object", code="seal_invalid")
        try:
            embedded = signing_sm2.load_sm2_public_key(str(seal.get("public_key", "")).encode("ascii"))
        except (signing.SigningError, UnicodeEncodeError) as exc:
            raise VerificationError("SM2 seal: public key unreadable", code="seal_invalid") from exc
        known = [*self.sm2_public_keys(), *known_keys]
        if embedded not in known:
            raise VerificationError(
                f"SM2 seal: made with key {embedded.fingerprint()[:16]}…, which is not one of this archive's SM2 keys",
                code="seal_invalid",
            )
        try:
            return signing.verify_sm2(data=data, seal=seal, expected_public_key=embedded)
        except signing.VerificationError as exc:
            raise VerificationError(f"SM2 seal: {exc.reason}", code="seal_invalid") from exc

    def verify_seal(
        self, data: bytes, bundle_or_parts: SealBundle | tuple[bytes, dict] | dict[str, Any], *,
        known_sm2_keys: Iterable[signing_sm2.Sm2PublicKey] = (),
    ) -> SealVerification:
        """Verify both seals over ``data``; raise VerificationError naming the failing one.

        ``bundle_or_parts`` is a :class:`SealBundle`, a ``(cades, sm2)`` pair or a
        ``{"cades": ..., "sm2": ...}`` mapping.
        """
        if isinstance(bundle_or_parts, SealBundle):
            cades, sm2 = bundle_or_parts.cades, bundle_or_parts.sm2
        elif isinstance(bundle_or_parts, dict):
            cades, sm2 = bundle_or_parts["cades"], bundle_or_parts["sm2"]
        else:
            cades, sm2 = bundle_or_parts
        report = self.verify_cades(data, cades)
        return SealVerification(cades=report, sm2=self.verify_sm2(data, sm2, known_keys=known_sm2_keys))

    def verify_pdf(self, data: signing.pades.PdfSource) -> signing.PdfSealReport:
        """Verify a PAdES sealed copy (bytes, a binary file or a path); raise VerificationError naming what failed."""
        try:
            return signing.verify_pdf(data=data, trust_roots=self.trust_roots())
        except signing.VerificationError as exc:
            raise VerificationError(f"PAdES copy: {exc.reason}", code="seal_invalid") from exc


_sealers: dict[Settings, Sealer] = {}
_sealers_lock = threading.Lock()


def get_sealer(settings: Settings) -> Sealer:
    """The :class:`Sealer` for ``settings``, cached; rebuilt when the key files change (rotation)."""
    with _sealers_lock:
        sealer = _sealers.get(settings)
        if sealer is not None and sealer.stamp() == sealer._stamp_at_build:  # noqa: SLF001
            return sealer
        if sealer is not None and sealer.source == "pkcs11" and "signer" in sealer.__dict__:
            sealer.signer.close()
        sealer = Sealer(settings)
        sealer._stamp_at_build = sealer.stamp()  # noqa: SLF001
        _sealers[settings] = sealer
        return sealer


# ---------------------------------------------------------------------- certificates


def _role_of(cert: asn1_x509.Certificate) -> str:
    if cert.self_signed != "no":
        return "root"
    eku = cert.extended_key_usage_value
    if eku is not None and "time_stamping" in eku.native:
        return "tsa"
    if cert.ca:
        return "ca"
    return "seal"


def _pem(cert: asn1_x509.Certificate) -> str:
    from asn1crypto import pem

    return pem.armor("CERTIFICATE", cert.dump()).decode("ascii")


def _pem_bundle(certs: Iterable[tuple[str, asn1_x509.Certificate]]) -> bytes:
    seen: set[str] = set()
    out = []
    for _role, cert in certs:
        fp = signing_certs.sha256_fingerprint(cert)
        if fp not in seen:
            seen.add(fp)
            out.append(_pem(cert))
    return "".join(out).encode("ascii")


def certificates_in_seal(cades: bytes) -> list[tuple[str, asn1_x509.Certificate]]:
    """(role, certificate) for every certificate inside a CAdES seal and its time-stamp token."""
    found: list[tuple[str, asn1_x509.Certificate]] = []
    info = asn1_cms.ContentInfo.load(cades)
    for choice in info["content"]["certificates"] or []:
        if choice.name == "certificate":
            found.append((_role_of(choice.chosen), choice.chosen))
    token = asn1_cms.ContentInfo.load(signing.extract_timestamp_token(cades))
    for choice in token["content"]["certificates"] or []:
        if choice.name == "certificate":
            found.append((_role_of(choice.chosen), choice.chosen))
    return found


def record_certificates(session: Session, certs: Iterable[tuple[str, asn1_x509.Certificate]]) -> int:
    """Keep each certificate in the ``certificates`` table (first use; never removed). Returns how many were new.

    An upsert that skips known ones: two workers sealing at once with the same new
    certificate both succeed (a look-then-insert made one fail with a duplicate key).
    Rows go in fingerprint order, so concurrent inserts wait for each other in one order.
    """
    rows: dict[str, dict[str, Any]] = {}
    for role, cert in certs:
        fp = signing_certs.sha256_fingerprint(cert)
        if fp in rows:
            continue
        validity = cert["tbs_certificate"]["validity"]
        rows[fp] = {
            "fingerprint": fp, "role": role, "subject": signing_certs.subject_text(cert), "pem": _pem(cert),
            "not_before": validity["not_before"].native, "not_after": validity["not_after"].native,
        }
    known = set(session.execute(
        select(TrustedCertificate.fingerprint).where(TrustedCertificate.fingerprint.in_(list(rows)))
    ).scalars()) if rows else set()
    return insert_ignoring_duplicates(session, TrustedCertificate, [rows[fp] for fp in sorted(rows) if fp not in known])


def record_sm2_key(session: Session, public_key: signing_sm2.Sm2PublicKey) -> None:
    """Keep an SM2 public key (role ``sm2``; ``pem`` is the SubjectPublicKeyInfo) forever (an upsert)."""
    fp = public_key.fingerprint()
    if session.get(TrustedCertificate, fp) is None:
        insert_ignoring_duplicates(session, TrustedCertificate, [{
            "fingerprint": fp, "role": "sm2", "subject": "SM2 public key",
            "pem": public_key.public_pem().decode("ascii"),
        }])


def record_sealer_certificates(session: Session, sealer: Sealer) -> int:
    """Record every certificate and the SM2 key of the current configuration (keys init/rotate)."""
    added = record_certificates(session, sealer._local_certificates())  # noqa: SLF001
    record_sm2_key(session, sealer.sm2_key.public_key)
    return added


def recorded_sm2_keys(session: Session) -> list[signing_sm2.Sm2PublicKey]:
    """Every SM2 public key that ever sealed for us."""
    rows = session.execute(select(TrustedCertificate.pem).where(TrustedCertificate.role == "sm2")).scalars()
    return [signing_sm2.load_sm2_public_key(pem.encode("ascii")) for pem in rows]


def published_chain_pem(session: Session, sealer: Sealer) -> bytes:
    """The trust chain to publish: the sealer's certificates plus every recorded one (SM2 keys excluded)."""
    local = sealer._local_certificates()  # noqa: SLF001
    rows = session.execute(
        select(TrustedCertificate).where(TrustedCertificate.role != "sm2").order_by(TrustedCertificate.added_at)
    ).scalars()
    recorded = [(r.role, signing_certs.to_asn1_certificate(r.pem.encode("ascii"))) for r in rows]
    order = {"root": 0, "ca": 1, "seal": 2, "tsa": 3}
    return _pem_bundle(sorted([*local, *recorded], key=lambda rc: order.get(rc[0], 4)))


# ------------------------------------------------------------------------- manifests


def manifest_fields(item: EvidenceItem, *, uploader: User | None) -> dict[str, Any]:
    """The facts an item's manifest states, from its database row."""
    return {
        "format": MANIFEST_FORMAT,
        "item_id": item.id,
        "case_id": item.case_id,
        "case_number": item.case.case_number,
        "vault": item.vault.name,
        "kind": item.kind.value,
        "original_filename": item.original_filename,
        "media_type": item.media_type,
        "size": item.size,
        "sha256": item.sha256,
        "sm3": item.sm3,
        "storage_key": item.storage_key,
        "storage_version": item.storage_version,
        "received_time": _utc_text(item.received_at),
        "uploader": uploader.name if uploader else None,
        "uploader_id": item.uploaded_by,
        "device": item.device_id,
        "recorded_start": _utc_text(item.recorded_start),
        "parent_id": item.parent_id,
        "media_facts": item.media_facts,
    }


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no whitespace), UTF-8: the bytes that are signed."""
    return ledger.canonical_json(value).encode("utf-8")


def build_manifest(session: Session, item: EvidenceItem) -> bytes:
    """The canonical manifest of an item as its row stands now."""
    return canonical_bytes(manifest_fields(item, uploader=session.get(User, item.uploaded_by)))


# ---------------------------------------------------------------------- item seals


Content = bytes | BinaryIO | Iterable[bytes]
"""Bytes, a seekable binary file (read from its start), or a stream of chunks."""

def _chunks(content: Content) -> Iterator[bytes]:
    if isinstance(content, (bytes, bytearray, memoryview)):
        yield bytes(content)
    elif hasattr(content, "read"):
        content.seek(0)
        while chunk := content.read(CHUNK):
            yield chunk
    else:
        yield from content


def _starts_with(content: Content, prefix: Content, *, exactly: bool = False) -> bool:
    """True when ``content`` begins with the bytes of ``prefix`` (all of it with ``exactly``).

    Both are streamed side by side, whatever their chunk sizes: only one chunk of
    each is held at a time.
    """
    data, want_chunks = _chunks(content), _chunks(prefix)
    try:
        pending = memoryview(b"")
        for chunk in want_chunks:
            want = memoryview(chunk)
            while want:
                while not pending:
                    got = next(data, None)
                    if got is None:
                        return False  # content ended first
                    pending = memoryview(got)
                n = min(len(want), len(pending))
                if want[:n] != pending[:n]:
                    return False
                want, pending = want[n:], pending[n:]
        return not exactly or (not pending and not any(data))
    finally:
        data.close()
        want_chunks.close()


def spool(chunks: Iterable[bytes], into: BinaryIO, *algorithms: str) -> HashingStream:
    """Copy ``chunks`` to the file ``into`` while hashing them; rewind it and return the hashers."""
    stream = HashingStream(chunks, *algorithms)
    for chunk in stream:
        into.write(chunk)
    into.flush()
    into.seek(0)
    return stream


def _temporary_file() -> BinaryIO:
    # Unnamed and removed on close, even when the worker is killed: nothing to clean up.
    # A PDF needs twice its size here (original and copy), in TMPDIR.
    return tempfile.TemporaryFile(prefix="evidence-seal-")


@dataclass(frozen=True)
class _Written:
    """An object written (or found identical) and locked by :func:`_put_locked`."""

    key: str
    media_type: str
    sha256: str
    size: int
    stored: StoredObject


def _put_locked(store: ObjectStore, key: str, content: bytes | BinaryIO, *, media_type: str,
                until: datetime) -> _Written:
    """Stream an object into the store, hashing it on the way, and lock it.

    An identical object already there (a retry) is reused; a different one raises
    ObjectExists. ``content`` is bytes or a seekable binary file.
    """
    stream = HashingStream(_chunks(content), "sha256")
    try:
        stored = store.put(key, stream, content_type=media_type)
    except ObjectExists:
        current = store.stat(key)
        stream = HashingStream(_chunks(content), "sha256")
        if not _starts_with(store.read(key, version_id=current.version_id), stream, exactly=True):
            raise
        stored = current
    if not stored.locked:
        stored = store.lock(key, version_id=stored.version_id, until=until)
    return _Written(key=key, media_type=media_type, sha256=stream.hexdigest("sha256"), size=stream.size,
                    stored=stored)


def _existing(store: ObjectStore, key: str) -> bytes | None:
    """The current (small) object at ``key``, or None when there is none."""
    try:
        current = store.stat(key)
    except ArchiveError:
        return None
    return b"".join(store.read(key, version_id=current.version_id))


def _spool_existing(store: ObjectStore, key: str, into: BinaryIO) -> bool:
    """Spool the current object at ``key`` into the file ``into``; False when there is none."""
    try:
        current = store.stat(key)
    except ArchiveError:
        return False
    spool(store.read(key, version_id=current.version_id), into)
    return True


@dataclass(frozen=True)
class ItemSealRecord:
    """The outcome of :func:`seal_item`."""

    item_id: str
    manifest_sha256: str
    cades_sha256: str
    sm2_sha256: str
    pades_sha256: str | None
    """SHA-256 of the PAdES sealed copy (documents that are PDFs), else None."""
    timestamp_time: datetime | None
    """genTime of the CAdES time-stamp (None when the item was already sealed)."""


def _record_from_rows(item: EvidenceItem) -> ItemSealRecord:
    by_role = {d.role: d for d in item.derived}
    return ItemSealRecord(
        item_id=item.id, manifest_sha256=by_role["manifest"].sha256, cades_sha256=by_role["cades"].sha256,
        sm2_sha256=by_role["sm2"].sha256, pades_sha256=by_role["pades"].sha256 if "pades" in by_role else None,
        timestamp_time=None,
    )


def _mark_failed(db: Database, item_id: str) -> None:
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is not None and item.seal_status != "sealed":
            item.seal_status = "failed"


def seal_item(*, db: Database, store: ObjectStore, sealer: Sealer, item_id: str, actor: str = "system:worker") -> ItemSealRecord:
    """Seal an item's manifest (CAdES-B-T + SM2) and, for PDFs, make a PAdES-B-T copy.

    Objects first, rows second: manifest and seals are written (and locked) in the
    vault, then the derived rows, ``seal_status = sealed`` and one ``item_sealed``
    custody entry are committed together. Safe to run twice: a sealed item is left
    alone, and seal objects left by an interrupted run are reused when they verify.
    On failure ``seal_status`` becomes ``failed`` (retrying later is allowed) and the
    error is raised.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(f"no evidence item {item_id}", code="item_not_found")
        if item.seal_status == "sealed":
            return _record_from_rows(item)
        if not item.sm3:
            sm3_step = (item.processing or {}).get("sm3", {})
            if sm3_step.get("state") == "failed":  # waiting cannot help: say why, for good
                raise SealingFailed(
                    f"item {item_id} cannot be sealed: its SM3 hash could not be computed ({sm3_step.get('reason')})",
                    code="seal_not_ready", status=409,
                )
            raise SealNotReady(f"item {item_id} cannot be sealed before its SM3 hash is computed")
        manifest = build_manifest(session, item)
        vault = item.vault.name
        until = item.retention_until or (utcnow() + timedelta(days=sealer.settings.retention_days))
        snapshot = {"sha256": item.sha256, "size": item.size, "key": item.storage_key,
                    "version": item.storage_version}
        wants_pdf = item.kind == EvidenceKind.document
    try:
        objects = _make_seal_objects(
            store=store, sealer=sealer, item_id=item_id, vault=vault, manifest=manifest, until=until,
            snapshot=snapshot, wants_pdf=wants_pdf,
        )
    except ArchiveError:
        _mark_failed(db, item_id)
        raise
    with db.session() as session:
        item = lock_item(session, item_id)
        if item.seal_status == "sealed":
            return _record_from_rows(item)
        if build_manifest(session, item) != manifest:
            # The row changed while we sealed (e.g. a late processing step); seal again later.
            raise SealNotReady(f"item {item_id} changed while being sealed; sealing again is needed")
        have = {d.role for d in item.derived}
        written: dict[str, _Written] = objects["stored"]
        for role, w in written.items():
            if role not in have:
                session.add(DerivedObject(
                    item_id=item_id, role=role, media_type=w.media_type, sha256=w.sha256, size=w.size,
                    storage_key=w.key, storage_version=w.stored.version_id,
                ))
        item.seal_status = "sealed"
        from archive.exports.service import wake_waiting_exports  # exports builds on sealing

        wake_waiting_exports(session, case_id=item.case_id)  # the reconciler sends them
        record_certificates(session, certificates_in_seal(objects["cades"]))
        record_sm2_key(session, sealer.sm2_key.public_key)
        report: SealVerification = objects["report"]
        digests = {role: w.sha256 for role, w in written.items()}
        ledger.append(
            session, actor=actor, action="item_sealed", case_id=item.case_id, item_id=item_id,
            details={
                "manifest_sha256": digests["manifest"], "cades_sha256": digests["cades"],
                "sm2_sha256": digests["sm2"], "pades_sha256": digests.get("pades"),
                "pades_problem": objects["pades_problem"],
                "signer": report.cades.signer_subject, "signer_cert_sha256": report.cades.signer_cert_sha256,
                "timestamp_time": _utc_text(report.cades.timestamp_time), "tsa": report.cades.tsa_subject,
                "sm2_key_sha256": report.sm2.public_key_fingerprint,
            },
        )
        if objects["pades_problem"]:
            flags = set(item.flags or [])
            flags.add("pdf_not_sealable")
            item.flags = sorted(flags)
    log.info("sealed item %s", item_id)
    return ItemSealRecord(
        item_id=item_id, manifest_sha256=digests["manifest"], cades_sha256=digests["cades"],
        sm2_sha256=digests["sm2"], pades_sha256=digests.get("pades"), timestamp_time=report.cades.timestamp_time,
    )


def _make_seal_objects(
    *, store: ObjectStore, sealer: Sealer, item_id: str, vault: str, manifest: bytes, until: datetime,
    snapshot: dict[str, Any], wants_pdf: bool,
) -> dict[str, Any]:
    # Named by the manifest's hash: objects locked by a run interrupted before the row
    # changed (a retried probe adds media facts) are harmless orphans, not a roadblock.
    tag = "." + hashlib.sha256(manifest).hexdigest()[:16]
    keys = {
        "manifest": derived_key(vault, item_id, "manifest", tag + ".json"),
        "cades": derived_key(vault, item_id, "cades", tag + ".p7s"),
        "sm2": derived_key(vault, item_id, "sm2", tag + ".json"),
        "pades": derived_key(vault, item_id, "pades", tag + ".pdf"),
    }
    # Reuse seals an interrupted run left behind, but only if they verify over this manifest.
    cades, sm2 = _existing(store, keys["cades"]), _existing(store, keys["sm2"])
    try:
        if cades is not None:
            sealer.verify_cades(manifest, cades)
    except VerificationError:
        raise SealingFailed(f"an earlier, invalid seal object sits at {keys['cades']}; refusing to continue")
    sm2_record = None
    if sm2 is not None:
        try:
            sm2_record = json.loads(sm2)
            sealer.verify_sm2(manifest, sm2_record)
        except (ValueError, VerificationError):
            raise SealingFailed(f"an earlier, invalid seal object sits at {keys['sm2']}; refusing to continue")
    if cades is None or sm2_record is None:
        bundle = sealer.seal(manifest)
        cades = cades if cades is not None else bundle.cades
        sm2_record = sm2_record if sm2_record is not None else bundle.sm2
    sm2_bytes = sm2 if sm2 is not None else canonical_bytes(sm2_record)
    # Verify what we produce: a seal that does not verify here (e.g. a TSA outside the
    # trust roots) must fail now, not in front of a court.
    report = sealer.verify_seal(manifest, (cades, sm2_record))
    stored = {
        "manifest": (keys["manifest"], manifest, "application/json"),
        "cades": (keys["cades"], cades, "application/pkcs7-signature"),
        "sm2": (keys["sm2"], sm2_bytes, "application/json"),
    }
    pades_problem = None
    try:
        with contextlib.ExitStack() as files:
            if wants_pdf:
                pades, pades_problem = _pades_copy(
                    store=store, sealer=sealer, item_id=item_id, key=keys["pades"], snapshot=snapshot, files=files)
                if pades is not None:
                    stored["pades"] = (keys["pades"], pades, "application/pdf")
            result = {role: _put_locked(store, key, content, media_type=media_type, until=until)
                      for role, (key, content, media_type) in stored.items()}
    except OSError as exc:
        # The store's own errors arrive translated; an OSError here is the worker's temporary
        # directory (a full disk under a large scan). The item fails and can be sealed again;
        # it must not be taken for a PDF that cannot be sealed.
        raise SealingFailed(
            f"the worker's temporary directory failed while making the PAdES copy of item {item_id}: {exc}",
            code="temporary_space_failed",
        ) from exc
    return {"stored": result, "cades": cades, "report": report, "pades_problem": pades_problem}


def _pades_copy(
    *, store: ObjectStore, sealer: Sealer, item_id: str, key: str, snapshot: dict[str, Any],
    files: contextlib.ExitStack,
) -> tuple[BinaryIO | None, str | None]:
    """The checked PAdES copy of a PDF original as a temporary file, or why there is none.

    Returns ``(None, None)`` for an original that is not a PDF and ``(None, problem)``
    for a PDF pyHanko cannot update. The temporary files live as long as ``files``.
    """
    original = files.enter_context(_temporary_file())
    spooled = spool(store.read(snapshot["key"], version_id=snapshot["version"]), original, "sha256")
    if spooled.hexdigest("sha256") != snapshot["sha256"] or spooled.size != snapshot["size"]:
        raise VerificationError(
            f"stored original of item {item_id} no longer matches its sha256; not sealing a copy",
            code="fixity_failed",
        )
    if original.read(5) != b"%PDF-":
        return None, None
    copy = files.enter_context(_temporary_file())
    if _spool_existing(store, key, copy):
        try:
            check_pades_copy(sealer, original, copy)
        except VerificationError as exc:
            raise SealingFailed(f"an earlier, invalid PAdES copy sits at {key}") from exc
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
    if not _starts_with(copy, original):
        raise VerificationError("PAdES copy: does not begin with the original's bytes (not an incremental update)",
                                code="seal_invalid")
    return sealer.verify_pdf(copy)


# ---------------------------------------------------------------------- checkpoints

CHECKPOINT_ACTION = "checkpoint_sealed"
"""The custody-ledger action that records each sealed checkpoint (see :func:`checkpoint_record`)."""


def _serialise_checkpoints(session: Session) -> None:
    # SQLite already runs every transaction under BEGIN IMMEDIATE; PostgreSQL needs a lock
    # so two workers never seal competing checkpoints with crossed "previous" links.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7310241)"))


def latest_checkpoint(session: Session) -> Checkpoint | None:
    """The checkpoint with the largest tree size, or None."""
    return session.execute(select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(1)).scalar_one_or_none()


def _new_entries(session: Session, last: Checkpoint | None, size: int) -> int:
    """Entries appended since ``last`` was sealed, not counting the entry that records ``last``.

    That entry always follows its checkpoint's tree (it is appended in the same
    transaction, after the tree head was taken); counting it would make every checkpoint
    "due" again and the timed checkpoint would seal forever on an idle ledger.
    """
    if last is None:
        return size
    grown = size - last.tree_size
    if grown > 0:
        first = session.execute(
            select(LedgerEntry.action).where(LedgerEntry.seq == last.tree_size + 1)
        ).scalar_one_or_none()
        if first == CHECKPOINT_ACTION:
            grown -= 1
    return grown


def checkpoint_due(session: Session, settings: Settings) -> bool:
    """True when at least ``checkpoint_every_entries`` entries were added since the last checkpoint."""
    return _new_entries(session, latest_checkpoint(session), ledger.size(session)) >= settings.checkpoint_every_entries


def checkpoint_statement(cp: Checkpoint) -> dict[str, Any]:
    """The parsed statement of a checkpoint."""
    return json.loads(cp.statement)


def checkpoint_object_keys(vault: str, cp: Checkpoint) -> dict[str, str]:
    """Where a checkpoint is kept in a vault.

    The name carries the tree size (sortable) and the statement's hash, so a
    retried, re-signed checkpoint never collides with an orphan from a crashed run.
    """
    base = f"{vault}/checkpoints/{cp.tree_size:012d}-{hashlib.sha256(cp.statement.encode()).hexdigest()[:16]}"
    return {"statement": base + ".json", "cades": base + ".p7s", "sm2": base + ".sm2.json"}


def checkpoint_record(cp: Checkpoint, previous: Checkpoint | None) -> dict[str, Any]:
    """The details of the ``checkpoint_sealed`` custody entry that records ``cp``.

    Names the checkpoint (id, tree size, root), the SHA-256 of its sealed statement, of
    its CAdES seal and of its SM2 seal (canonical JSON), and the checkpoint before it.
    :func:`verify_checkpoints` recomputes this from each row and compares.
    """
    return {
        "checkpoint": cp.id,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "statement_sha256": hashlib.sha256(cp.statement.encode("utf-8")).hexdigest(),
        "cades_sha256": hashlib.sha256(bytes(cp.cades)).hexdigest(),
        "sm2_sha256": hashlib.sha256(canonical_bytes(cp.sm2)).hexdigest(),
        "previous": None if previous is None else {
            "id": previous.id, "tree_size": previous.tree_size, "root_hash": previous.root_hash},
    }


def create_checkpoint(
    session: Session, sealer: Sealer, *, store: ObjectStore | None = None, now: datetime | None = None
) -> Checkpoint | None:
    """Seal the ledger's current tree head if the ledger grew since the last checkpoint.

    The statement (canonical JSON: format, tree size, root, last entry hash, time,
    previous checkpoint) gets a CAdES-B-T and an SM2 seal. With a ``store``, statement
    and seals are also written, locked, into every vault whose case has entries since
    the previous checkpoint. The checkpoint is then itself recorded in the ledger (a
    ``checkpoint_sealed`` entry, see :func:`checkpoint_record`), so deleting, altering or
    reordering checkpoint rows is provable. Returns the new row (flushed in the caller's
    transaction), or None when there was nothing new.
    """
    _serialise_checkpoints(session)
    last = latest_checkpoint(session)
    size = ledger.size(session)
    if _new_entries(session, last, size) <= 0:
        return None
    head = ledger.tree_head(session, tree_size=size)
    statement = {
        "format": CHECKPOINT_FORMAT,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "last_entry_hash": head.last_entry_hash,
        "time": ledger.iso_utc(now or datetime.now(timezone.utc)),
        "previous": None if last is None else {"id": last.id, "tree_size": last.tree_size, "root_hash": last.root_hash},
    }
    statement_bytes = canonical_bytes(statement)
    bundle = sealer.seal(statement_bytes)
    report = sealer.verify_seal(statement_bytes, bundle)
    cp = Checkpoint(
        tree_size=head.tree_size, root_hash=head.root_hash, statement=statement_bytes.decode("utf-8"),
        cades=bundle.cades, sm2=bundle.sm2, timestamp_time=report.cades.timestamp_time,
    )
    if store is not None:
        vaults = session.execute(
            select(Vault.name).join(Case, Case.id == Vault.case_id).where(
                Case.id.in_(select(LedgerEntry.case_id).where(
                    LedgerEntry.seq > (last.tree_size if last else 0), LedgerEntry.seq <= size,
                    LedgerEntry.case_id.is_not(None),
                ))
            )
        ).scalars().all()
        until = utcnow() + timedelta(days=sealer.settings.retention_days)
        for vault in vaults:
            keys = checkpoint_object_keys(vault, cp)
            _put_locked(store, keys["statement"], statement_bytes, media_type="application/json", until=until)
            _put_locked(store, keys["cades"], bundle.cades, media_type="application/pkcs7-signature", until=until)
            _put_locked(store, keys["sm2"], bundle.sm2_json(), media_type="application/json", until=until)
    session.add(cp)
    session.flush()
    record_certificates(session, certificates_in_seal(bundle.cades))
    record_sm2_key(session, sealer.sm2_key.public_key)
    # Last, as everywhere: the ledger lock is the last lock a transaction takes.
    ledger.append(session, actor="system:checkpoint", action=CHECKPOINT_ACTION, details=checkpoint_record(cp, last))
    log.info("sealed ledger checkpoint at tree size %d", cp.tree_size)
    return cp


def checkpoint_covering(
    session: Session, sealer: Sealer, *, size: int, store: ObjectStore | None = None
) -> Checkpoint | None:
    """The first sealed checkpoint whose tree covers entries ``1..size``, sealed now if
    none does yet; None when the ledger itself holds fewer than ``size`` entries."""
    existing = session.execute(
        select(Checkpoint).where(Checkpoint.tree_size >= size).order_by(Checkpoint.tree_size).limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    created = create_checkpoint(session, sealer, store=store)
    return created if created is not None and created.tree_size >= size else None


def _failure(message: str, code: str = "checkpoint_inconsistent") -> VerificationError:
    return VerificationError(message, code=code)


@dataclass(frozen=True)
class RecordedCheckpoint:
    """A ``checkpoint_sealed`` custody entry: what the ledger says was sealed."""

    seq: int
    """The entry's sequence number."""
    details: dict[str, Any]
    """:func:`checkpoint_record` of the checkpoint as sealed."""

    @property
    def checkpoint_id(self) -> Any:
        """The id of the checkpoint row the entry names."""
        return self.details.get("checkpoint")

    def describe(self) -> str:
        """``checkpoint N (tree size T, recorded in ledger entry S)``."""
        return (f"checkpoint {self.checkpoint_id} (tree size {self.details.get('tree_size')}, "
                f"recorded in ledger entry {self.seq})")


def recorded_checkpoints(
    session: Session, *, up_to: int | None = None, latest_only: bool = False
) -> list[RecordedCheckpoint]:
    """The ``checkpoint_sealed`` entries among the ledger's first ``up_to`` entries, in order
    (only the last of them with ``latest_only``).

    Raises VerificationError naming an entry whose details are not a checkpoint record.
    """
    query = select(LedgerEntry.seq, LedgerEntry.details).where(LedgerEntry.action == CHECKPOINT_ACTION)
    if up_to is not None:
        query = query.where(LedgerEntry.seq <= up_to)
    query = query.order_by(LedgerEntry.seq.desc()).limit(1) if latest_only else query.order_by(LedgerEntry.seq)
    found = []
    for seq, details in session.execute(query):
        try:
            record = json.loads(details)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("tree_size"), int):
            raise _failure(f"ledger entry {seq}: its checkpoint record is unreadable (entry edited)")
        found.append(RecordedCheckpoint(seq=seq, details=record))
    return found


@dataclass(frozen=True)
class CheckpointsReport:
    """What :func:`verify_checkpoints` established."""

    count: int
    """Number of checkpoints checked."""
    latest_tree_size: int | None
    latest_root_hash: str | None
    latest_timestamp_time: datetime | None


def verify_checkpoint_seal(session: Session, sealer: Sealer, cp: Checkpoint) -> dict[str, Any]:
    """Check a checkpoint's seals and that its row agrees with its statement; return the statement."""
    statement_bytes = (cp.statement or "").encode("utf-8")
    try:
        sealer.verify_seal(statement_bytes, (bytes(cp.cades or b""), cp.sm2 or {}),
                           known_sm2_keys=recorded_sm2_keys(session))
    except VerificationError as exc:
        raise VerificationError(f"checkpoint {cp.id} (tree size {cp.tree_size}): {exc.message}",
                                code="checkpoint_invalid") from exc
    try:
        statement = json.loads(statement_bytes)
    except ValueError as exc:
        raise VerificationError(f"checkpoint {cp.id}: statement is not JSON", code="checkpoint_invalid") from exc
    if (not isinstance(statement, dict) or canonical_bytes(statement) != statement_bytes
            or statement.get("format") != CHECKPOINT_FORMAT):
        raise VerificationError(f"checkpoint {cp.id}: statement is not a canonical checkpoint statement",
                                code="checkpoint_invalid")
    if statement.get("tree_size") != cp.tree_size or statement.get("root_hash") != cp.root_hash:
        raise VerificationError(
            f"checkpoint {cp.id}: row says tree size {cp.tree_size} root {cp.root_hash}, but the sealed statement "
            f"says {statement.get('tree_size')} root {statement.get('root_hash')} (checkpoint row altered)",
            code="checkpoint_invalid",
        )
    return statement


def _check_records(recorded: list[RecordedCheckpoint], rows: list[Checkpoint]) -> None:
    """The ledger's checkpoint records chain, and name exactly the checkpoint rows present.

    Catches a deleted checkpoint row (an entry names it), an extra row (no entry names
    it), reordered rows (tree-size order differs from the order they were recorded in)
    and removed or reordered records themselves (their previous-links break).
    """
    before: RecordedCheckpoint | None = None
    for rec in recorded:
        expected = None if before is None else {
            "id": before.checkpoint_id, "tree_size": before.details.get("tree_size"),
            "root_hash": before.details.get("root_hash")}
        if rec.details.get("previous") != expected:
            raise _failure(
                f"{rec.describe()} names previous checkpoint {rec.details.get('previous')}, but the ledger's "
                f"preceding checkpoint record is {expected} (a checkpoint or its record was removed or reordered)"
            )
        if before is not None and rec.details["tree_size"] <= before.details["tree_size"]:
            raise _failure(f"{rec.describe()} does not extend the tree of {before.describe()} (checkpoints reordered)")
        if rec.details["tree_size"] >= rec.seq:
            raise _failure(f"{rec.describe()} claims to cover entries up to and past itself (entry edited)")
        before = rec
    present = {cp.id: cp for cp in rows}
    for rec in recorded:
        if rec.checkpoint_id not in present:
            raise _failure(f"{rec.describe()} is missing: its checkpoint row was deleted",
                           code="checkpoint_missing")
    named = {rec.checkpoint_id for rec in recorded}
    for cp in rows:
        if cp.id not in named:
            raise _failure(
                f"checkpoint {cp.id} (tree size {cp.tree_size}) has no {CHECKPOINT_ACTION} entry in the ledger: "
                "it was added behind the ledger's back, or sealed by a version that did not yet record "
                "checkpoints in the ledger (such checkpoints are not accepted; see the README)",
                code="checkpoint_unrecorded",
            )
    by_size = [cp.id for cp in rows]
    by_record = [rec.checkpoint_id for rec in recorded]
    if by_size != by_record:
        raise _failure(
            f"checkpoints out of order: by tree size the rows run {by_size}, the ledger recorded them as "
            f"{by_record} (checkpoint rows reordered)"
        )


def checkpoint_sizes(session: Session) -> list[int]:
    """The tree sizes of the checkpoint rows: pass them to :func:`archive.custody.ledger.verify` as
    ``at_sizes`` so its one pass yields the roots :func:`verify_checkpoints` compares."""
    return list(session.execute(select(Checkpoint.tree_size).order_by(Checkpoint.tree_size)).scalars())


def verify_checkpoints(
    session: Session, sealer: Sealer, *, ledger_report: ledger.LedgerReport | None = None
) -> CheckpointsReport:
    """Check every checkpoint against its ledger record, its seals and the current ledger.

    First the ledger's ``checkpoint_sealed`` records: they chain by their previous-links,
    each names a checkpoint row that exists, every row is named by one, and the rows'
    tree-size order is the order they were recorded in. Then for each checkpoint: both
    seals verify over its statement; the row agrees with its statement and with the
    record (statement, seal digests, previous checkpoint); its sealed ``previous`` link
    names the preceding checkpoint; the current ledger's first ``tree_size`` entries
    hash to the sealed root; and an RFC 9162 consistency proof links it to the next
    checkpoint. Raises VerificationError naming the first failure.

    The roots come from one pass over the ledger (:func:`archive.custody.ledger.verify` with
    ``at_sizes=checkpoint_sizes(session)``): give its report as ``ledger_report`` when
    the caller has just run it, else the pass runs here.
    """
    return verify_checkpoint_chain(session, ledger_report=ledger_report,
                                   statement_of=lambda cp: verify_checkpoint_seal(session, sealer, cp))


def verify_checkpoint_chain(
    session: Session, *, ledger_report: ledger.LedgerReport | None,
    statement_of: Callable[[Checkpoint], dict[str, Any]],
) -> CheckpointsReport:
    """:func:`verify_checkpoints` with the seal check given as ``statement_of`` (which
    returns the checkpoint's statement once its seals hold). The service always passes
    :func:`verify_checkpoint_seal`; only the ledger benchmark passes the unchecked
    :func:`checkpoint_statement`, to time the rest on checkpoints it could not seal."""
    total = ledger.size(session)
    cps = session.execute(select(Checkpoint).order_by(Checkpoint.tree_size)).scalars().all()
    recorded = recorded_checkpoints(session, up_to=total)
    _check_records(recorded, cps)
    if not cps:
        return CheckpointsReport(count=0, latest_tree_size=None, latest_root_hash=None, latest_timestamp_time=None)
    if cps[-1].tree_size > total:
        raise _failure(
            f"checkpoint {cps[-1].id} covers {cps[-1].tree_size} entries but the ledger holds {total} "
            "(entries removed after they were sealed)",
        )
    if ledger_report is None or any(cp.tree_size not in ledger_report.roots for cp in cps):
        ledger_report = ledger.verify(session, at_sizes=[cp.tree_size for cp in cps])
    records = {rec.checkpoint_id: rec for rec in recorded}
    previous: Checkpoint | None = None
    previous_root: bytes | None = None
    for cp in cps:
        statement = statement_of(cp)
        rec = records[cp.id]
        actual = checkpoint_record(cp, previous)
        changed = sorted(k for k in actual.keys() | rec.details.keys() if actual.get(k) != rec.details.get(k))
        if changed:
            raise _failure(
                f"checkpoint {cp.id} (tree size {cp.tree_size}) differs from its record in ledger entry {rec.seq} "
                f"in {', '.join(changed)} (checkpoint row altered or replaced)", code="checkpoint_invalid",
            )
        expected_prev = None if previous is None else {
            "id": previous.id, "tree_size": previous.tree_size, "root_hash": previous.root_hash}
        if statement.get("previous") != expected_prev:
            raise _failure(
                f"checkpoint {cp.id}: its sealed previous-checkpoint link {statement.get('previous')} does not "
                f"name the preceding checkpoint {expected_prev} (a checkpoint was removed or altered)",
            )
        sealed_root = bytes.fromhex(cp.root_hash)
        if ledger_report.roots[cp.tree_size] != cp.root_hash:
            raise _failure(
                f"checkpoint {cp.id}: the ledger's first {cp.tree_size} entries no longer hash to the sealed root "
                f"{cp.root_hash} (an entry at or before {cp.tree_size} was changed, removed or reordered)",
            )
        if previous is not None and previous_root is not None:
            # The proof the API serves, from the stored subtree hashes (O(log n)).
            try:
                proof = ledger.consistency(session, old_size=previous.tree_size, new_size=cp.tree_size)
                merkle.verify_consistency(old_size=previous.tree_size, new_size=cp.tree_size,
                                          old_root=previous_root, new_root=sealed_root,
                                          proof=[bytes.fromhex(p) for p in proof.path])
            except (merkle.ProofError, VerificationError) as exc:
                raise _failure(f"checkpoints {previous.id} -> {cp.id}: consistency proof fails: {exc}") from exc
        previous, previous_root = cp, sealed_root
    last = cps[-1]
    return CheckpointsReport(count=len(cps), latest_tree_size=last.tree_size, latest_root_hash=last.root_hash,
                             latest_timestamp_time=last.timestamp_time)


def checkpoint_public(cp: Checkpoint) -> dict[str, Any]:
    """A checkpoint as published: statement text, seals, and where to get proofs against it."""
    statement = checkpoint_statement(cp)
    previous = statement.get("previous")
    return {
        "id": cp.id,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "created_at": _utc_text(cp.created_at),
        "timestamp_time": _utc_text(cp.timestamp_time),
        "statement": cp.statement,
        "cades": base64.b64encode(bytes(cp.cades)).decode("ascii"),
        "sm2": cp.sm2,
        "proofs": {
            "inclusion": f"/api/v1/ledger/proof/inclusion?tree_size={cp.tree_size}&seq={{seq}}",
            "consistency_from_previous": (
                f"/api/v1/ledger/proof/consistency?old_size={previous['tree_size']}&new_size={cp.tree_size}"
                if previous else None
            ),
            "consistency_to_current": f"/api/v1/ledger/proof/consistency?old_size={cp.tree_size}",
        },
    }
