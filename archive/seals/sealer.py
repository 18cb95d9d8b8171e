"""The e-seal, its key, its time-stamping authority and its trust roots.

:class:`Sealer` knows where the e-seal key lives (the development PKI, key files, or a
PKCS#11 token), where time-stamps come from (an external RFC 3161 TSA, or the built-in
one in development), and which roots to trust; it seals bytes (detached CAdES-B-T and
SM2/SM3) and PDFs (PAdES-B-T), and verifies such seals. Entry points hold it in a
:class:`SealerSource` and pass it to the services that seal; no service looks one up.

Errors: signing failures are translated to :class:`SealingFailed` /
:class:`TimestampUnavailable`; a seal that does not verify raises
:class:`archive.errors.VerificationError` naming what failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from asn1crypto import x509 as asn1_x509

import signing
from archive.custody import ledger
from archive.errors import ConfigurationError, VerificationFailed
from archive.seals.errors import SealingFailed, TimestampUnavailable
from archive.settings import Settings
from archive.storage.streams import VaultCopy
from archive.wording import Sentences
from signing import certs as signing_certs
from signing import sm2 as signing_sm2
from signing.errors import REASONS as SIGNING_TEMPLATES

log = logging.getLogger(__name__)


SEALING_PROBLEMS = Sentences("sealing_problem", {
    "key_unavailable": "e-seal key unavailable ({source}): {detail}",
    "no_sm2_key": "no SM2 key configured (EVIDENCE_SM2_KEY)",
    "sm2_key_unavailable": "SM2 key {path} unavailable: {detail}",
    "timestamp_failed": "time-stamping failed: {detail}",  # (this and pdf_: read back from older rows)
    "sealing_failed": "sealing failed: {detail}",
    "pdf_timestamp_failed": "time-stamping the PDF seal failed: {detail}",
    "pades_failed": "PAdES sealing failed: {detail}",
    "wacz_timestamp_failed": "time-stamping the WACZ signature failed: {detail}",
    "wacz_failed": "WACZ signing failed: {detail}",
}, fields={"source": r"\w+", "path": r"\S+"})
"""Why the :class:`Sealer` could not seal (the message of its :class:`SealingFailed` or
:class:`TimestampUnavailable`, which a step, an export or background work keeps as its reason);
``detail`` is the signing library's reason (:data:`SIGNING_REASONS` where it is one of those)."""

SIGNING_REASONS = Sentences("signing_reason", SIGNING_TEMPLATES)
"""The reasons :mod:`signing` gives most (worded there, :data:`signing.errors.REASONS`), read
back inside a :data:`SEALING_PROBLEMS` sentence; ``detail`` is the library's own message."""


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


def sealed_copies(data: bytes, bundle: SealBundle, *, document: str, cades: str, sm2: str) -> list[VaultCopy]:
    """A sealed JSON document and its two detached seals as a vault keeps them, at the keys
    ``document``, ``cades`` (DER) and ``sm2`` (canonical JSON)."""
    return [VaultCopy(document, data, "application/json"),
            VaultCopy(cades, bundle.cades, "application/pkcs7-signature"),
            VaultCopy(sm2, bundle.sm2_json(), "application/json")]


@dataclass(frozen=True)
class SealVerification:
    """What :meth:`Sealer.verify_seal` established."""

    cades: signing.SealReport
    """Signer, chain, signing time, time-stamp time and TSA of the CAdES seal."""
    sm2: signing.Sm2Report
    """Key fingerprint and distinguishing id of the SM2 seal."""


@contextlib.contextmanager
def keys_lock(directory: Path) -> Iterator[None]:
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
        with keys_lock(directory):
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

    A process keeps one in a :class:`SealerSource`. The key is opened lazily at the first
    seal, so processes that only publish certificates or serve the TSA never touch the token.
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
        """Identifies the key material on disk; :class:`SealerSource` rebuilds when it changes (rotation)."""
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
            with keys_lock(self.dev.directory):
                return signing.signer_from_files(
                    key_path=self.dev.seal_key, cert_path=self.dev.seal_cert, chain_paths=self._chain_paths()
                )
        except signing.SigningError as exc:
            raise SealingFailed(SEALING_PROBLEMS.say("key_unavailable", source=self.source, detail=exc.reason)) from exc

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
            return signing.http_timestamper(self.settings.tsa_url, timeout=self.settings.tsa_timeout_seconds)
        if self.builtin_tsa is None:
            raise ConfigurationError("no time-stamping authority configured (EVIDENCE_TSA_URL)")
        return signing.local_timestamper(self.builtin_tsa)

    @cached_property
    def sm2_key(self) -> signing_sm2.Sm2PrivateKey:
        """The SM2 private key."""
        path = self.dev.sm2_key if self.dev else self.settings.sm2_key
        if path is None:
            raise SealingFailed(SEALING_PROBLEMS.say("no_sm2_key"))
        try:
            return signing_sm2.load_sm2_private_key(Path(path))
        except (signing.SigningError, OSError) as exc:
            raise SealingFailed(SEALING_PROBLEMS.say("sm2_key_unavailable", path=path, detail=exc)) from exc

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

    def local_certificates(self) -> list[tuple[str, asn1_x509.Certificate]]:
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

        :func:`archive.seals.registry.published_chain_pem` adds the certificates recorded in the database
        (an external TSA's, certificates of earlier configurations).
        """
        return signing_certs.pem_bundle(cert for _role, cert in self.local_certificates())

    def close(self) -> None:
        """Close the PKCS#11 session, if one was opened (a key file needs nothing)."""
        if self.source == "pkcs11" and "signer" in self.__dict__:
            self.signer.close()

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
        except signing.TimestampFailed as exc:  # its reason says what failed: said once, not twice
            raise TimestampUnavailable(exc.reason) from exc
        except signing.SigningError as exc:
            raise SealingFailed(SEALING_PROBLEMS.say("sealing_failed", detail=exc.reason)) from exc
        return SealBundle(cades=cades, sm2=sm2)

    def seal_pdf(self, source: signing.pades.PdfSource, output: BinaryIO) -> None:
        """Write a PAdES-B-T sealed copy of the PDF ``source`` to ``output`` (source only read).

        Give files (``output`` readable and seekable, e.g. ``tempfile.TemporaryFile()``)
        for anything large: see :func:`signing.seal_pdf`.
        """
        try:
            with self._sign_lock:
                signing.seal_pdf(source=source, output=output, signer=self.signer, timestamper=self.timestamper)
        except signing.TimestampFailed as exc:  # "time-stamping the PDF seal failed: ..." already
            raise TimestampUnavailable(exc.reason) from exc
        except signing.SigningError as exc:
            raise SealingFailed(SEALING_PROBLEMS.say("pades_failed", detail=exc.reason)) from exc

    def sign_wacz(self, digest: str, created: str, *, software: str) -> dict[str, Any]:
        """The WACZ ``signedData`` for a datapackage digest (see :mod:`signing.wacz`)."""
        from signing import wacz as signing_wacz

        try:
            with self._sign_lock:
                return signing_wacz.sign_wacz_hash(
                    digest=digest, created=created, signer=self.signer, timestamper=self.timestamper,
                    pool=self.trust_roots(), software=software)
        except signing.TimestampFailed as exc:
            raise TimestampUnavailable(SEALING_PROBLEMS.say("wacz_timestamp_failed", detail=exc.reason)) from exc
        except signing.SigningError as exc:
            raise SealingFailed(SEALING_PROBLEMS.say("wacz_failed", detail=exc.reason)) from exc

    # Verifying ----------------------------------------------------------------------

    def sm2_public_keys(self) -> list[signing_sm2.Sm2PublicKey]:
        """SM2 public keys this configuration trusts (the current one)."""
        return [self.sm2_key.public_key]

    @staticmethod
    def load_verifiers() -> None:
        """Import the CAdES and SM2 verifiers now (pyHanko and its certificate validation, some
        0.2 s): a process that forks checkers loads them once, before the fork, instead of
        once in each child."""
        signing.verify_detached, signing.verify_sm2  # noqa: B018 (PEP 562 names load on access)

    def verify_cades(self, data: bytes, cades: bytes) -> signing.SealReport:
        """Verify a detached CAdES-B-T seal over ``data``; raise VerificationFailed naming what failed."""
        try:
            return signing.verify_detached(data=data, seal=cades, trust_roots=self.trust_roots())
        except signing.VerificationError as exc:
            raise VerificationFailed(f"CAdES seal: {exc.reason}", code="seal_invalid") from exc

    def verify_sm2(
        self, data: bytes, seal: dict[str, Any], *, known_keys: Iterable[signing_sm2.Sm2PublicKey] = ()
    ) -> signing.Sm2Report:
        """Verify an SM2 seal made with one of our SM2 keys (current or ``known_keys``)."""
        if not isinstance(seal, dict):
            raise VerificationFailed("SM2 seal: not a JSON object", code="seal_invalid")
        try:
            embedded = signing_sm2.load_sm2_public_key(str(seal.get("public_key", "")).encode("ascii"))
        except (signing.SigningError, UnicodeEncodeError) as exc:
            raise VerificationFailed("SM2 seal: public key unreadable", code="seal_invalid") from exc
        known = [*self.sm2_public_keys(), *known_keys]
        if embedded not in known:
            raise VerificationFailed(
                f"SM2 seal: made with key {embedded.fingerprint()[:16]}…, which is not one of this archive's SM2 keys",
                code="seal_invalid",
            )
        try:
            return signing.verify_sm2(data=data, seal=seal, expected_public_key=embedded)
        except signing.VerificationError as exc:
            raise VerificationFailed(f"SM2 seal: {exc.reason}", code="seal_invalid") from exc

    def verify_seal(
        self, data: bytes, bundle_or_parts: SealBundle | tuple[bytes, dict] | dict[str, Any], *,
        known_sm2_keys: Iterable[signing_sm2.Sm2PublicKey] = (),
    ) -> SealVerification:
        """Verify both seals over ``data``; raise VerificationFailed naming the failing one.

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

    def verify_pdf(self, data: signing.pades.PdfSource, *, original_size: int = 0) -> signing.PdfSealReport:
        """Verify a PAdES sealed copy (bytes, a binary file or a path); raise VerificationFailed naming what failed.

        ``original_size``: the copy extends an original of that many bytes, whose own
        signatures (another organisation's e-seal) are left out (see :func:`signing.verify_pdf`).
        """
        try:
            return signing.verify_pdf(data=data, trust_roots=self.trust_roots(), original_size=original_size)
        except signing.VerificationError as exc:
            raise VerificationFailed(f"PAdES copy: {exc.reason}", code="seal_invalid") from exc


class SealerSource:
    """The one :class:`Sealer` of a process, rebuilt when the key material on disk changes.

    Each entry point builds one at start-up (the API in its services object, a worker
    process for its tasks) and hands :meth:`current` to the services that seal; a key
    rotation (``evidence keys rotate``) is picked up without a restart. Thread-safe.
    """

    def __init__(self, settings: Settings):
        """Nothing is opened or created until the first :meth:`current`."""
        self.settings = settings
        self._lock = threading.Lock()
        self._sealer: Sealer | None = None
        self._stamp: tuple | None = None

    def current(self) -> Sealer:
        """The sealer for the key material on disk now (built at first use, again after a rotation)."""
        with self._lock:
            if self._sealer is not None and self._sealer.stamp() == self._stamp:
                return self._sealer
            if self._sealer is not None:
                self._sealer.close()
            sealer = Sealer(self.settings)
            self._sealer, self._stamp = sealer, sealer.stamp()
            return sealer
