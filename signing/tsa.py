"""An RFC 3161 time-stamping authority, and pyHanko time-stampers.

:class:`TimeStampAuthority` turns a DER ``TimeStampReq`` into a DER
``TimeStampResp``. It is used in-process (:func:`local_timestamper`) on the
embedded default and can sit behind any HTTP endpoint (content type
``application/timestamp-query`` in, ``application/timestamp-reply`` out;
:func:`make_http_server` is a minimal stdlib one). Bad input never raises: it
gets a ``rejection`` response with a failInfo, as RFC 3161 section 2.4.2 asks.

In production the archive uses an external TSA through :func:`http_timestamper`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Sequence

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.general import simple_cms_attribute
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.requests_client import HTTPTimeStamper

from .certs import AnyCertificate, load_certificates, signing_certificate_attribute, to_asn1_certificate
from .errors import REASONS, KeyUnavailable, TimestampFailed
from .keys import load_private_key

__all__ = [
    "DEFAULT_POLICY_OID",
    "TimeStampAuthority",
    "http_timestamper",
    "local_timestamper",
    "make_http_server",
]

DEFAULT_POLICY_OID = "1.3.6.1.4.1.61009.1.3161.1"
"""Policy OID the built-in TSA stamps under (a private arc; not a registered policy)."""

# Weak digests (md5, sha1) are refused: a time-stamp over a collidable hash
# proves nothing about which document existed.
_IMPRINT_LENGTHS = {
    "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64,
    "sha3_256": 32, "sha3_384": 48, "sha3_512": 64,
}
_MAX_REQUEST = 64 * 1024


class TimeStampResp(tsp.TimeStampResp):
    """asn1crypto's ``TimeStampResp`` with ``timeStampToken`` OPTIONAL, as in RFC 3161.

    asn1crypto makes the token mandatory, so it can neither build nor read a
    rejection.
    """

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimeStampAuthority:
    """An RFC 3161 TSA holding a certificate (EKU timeStamping) and its EC or RSA key.

    Thread-safe: ``respond`` may be called concurrently.
    """

    def __init__(
        self,
        *,
        cert: AnyCertificate,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        chain: Sequence[AnyCertificate] = (),
        policy_oid: str = DEFAULT_POLICY_OID,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Build a TSA. ``chain`` holds certificates sent along when the client asks
        (certReq); ``clock`` returns an aware UTC datetime (tests freeze it)."""
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise KeyUnavailable("TSA key must be an EC or RSA private key")
        self._cert = to_asn1_certificate(cert)
        self._chain = [to_asn1_certificate(c) for c in chain]
        self._key = key
        self._policy = policy_oid
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        eku = self._cert.extended_key_usage_value
        if eku is None or eku.native != ["time_stamping"]:
            raise KeyUnavailable("TSA certificate must have extendedKeyUsage timeStamping only (RFC 3161 2.3)")
        ext_critical = {e["extn_id"].native: e["critical"].native for e in self._cert["tbs_certificate"]["extensions"]}
        if not ext_critical.get("extended_key_usage"):
            raise KeyUnavailable("TSA certificate's extendedKeyUsage must be critical (RFC 3161 2.3)")
        self._serial_lock = threading.Lock()
        self._last_serial = 0

    @classmethod
    def from_files(
        cls,
        *,
        cert_path: Path | str,
        key_path: Path | str,
        chain_paths: Sequence[Path | str] = (),
        passphrase: str | bytes | None = None,
        policy_oid: str = DEFAULT_POLICY_OID,
    ) -> "TimeStampAuthority":
        """Build a TSA from PEM/DER files."""
        key = load_private_key(key_path, passphrase=passphrase)
        chain = [c for p in chain_paths for c in load_certificates(p)]
        return cls(cert=load_certificates(cert_path)[0], key=key, chain=chain, policy_oid=policy_oid)

    @property
    def certificate(self) -> asn1_x509.Certificate:
        """The TSA's signing certificate."""
        return self._cert

    def _next_serial(self) -> int:
        # Nanosecond clock in the high bits plus 64 random bits: unique across
        # processes sharing this key, and strictly increasing inside one.
        candidate = (time.time_ns() << 64) | secrets.randbits(64)
        with self._serial_lock:
            if candidate <= self._last_serial:
                candidate = self._last_serial + 1
            self._last_serial = candidate
        return candidate

    @staticmethod
    def _rejection(fail_info: str, text: str) -> bytes:
        return TimeStampResp(
            {
                "status": tsp.PKIStatusInfo(
                    {
                        "status": "rejection",
                        "status_string": [text],
                        "fail_info": tsp.PKIFailureInfo({fail_info}),
                    }
                )
            }
        ).dump()

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER ``TimeStampReq`` with a DER ``TimeStampResp``.

        Never raises for bad input: malformed requests, weak or unknown hash
        algorithms, foreign policies and extensions get a ``rejection`` status
        with the matching failInfo.
        """
        if not isinstance(request_der, (bytes, bytearray)) or len(request_der) > _MAX_REQUEST:
            return self._rejection("bad_request", "request is not a DER TimeStampReq of sane size")
        try:
            req = tsp.TimeStampReq.load(bytes(request_der), strict=True)
            req.native  # force a full parse: asn1crypto is lazy
            version = req["version"].native
            imprint = req["message_imprint"]
            algo = imprint["hash_algorithm"]["algorithm"].native
            hashed = imprint["hashed_message"].native
        except (ValueError, TypeError, KeyError):
            return self._rejection("bad_data_format", "request is not a DER TimeStampReq")
        if version != "v1":
            return self._rejection("bad_request", "only TimeStampReq version 1 is supported")
        if algo not in _IMPRINT_LENGTHS:
            return self._rejection("bad_alg", f"hash algorithm {algo} is not accepted")
        if imprint["hash_algorithm"]["parameters"].native not in (None,):
            return self._rejection("bad_alg", "hash algorithm parameters must be absent or NULL")
        if len(hashed) != _IMPRINT_LENGTHS[algo]:
            return self._rejection("bad_data_format", f"message imprint length does not fit {algo}")
        if req["req_policy"].native is not None and req["req_policy"].dotted != self._policy:
            return self._rejection("unaccepted_policy", f"only policy {self._policy} is offered")
        if req["extensions"].native:
            return self._rejection("unaccepted_extensions", "no request extensions are supported")
        try:
            return self._grant(req, imprint)
        except Exception:  # noqa: BLE001 - RFC 3161 wants systemFailure, not a dropped connection
            return self._rejection("system_failure", "time-stamp token could not be produced")

    def _grant(self, req: tsp.TimeStampReq, imprint: tsp.MessageImprint) -> bytes:
        # Whole seconds with a declared one-second accuracy: simpler to audit
        # than sub-second claims the host clock cannot back.
        gen_time = self._clock().astimezone(timezone.utc).replace(microsecond=0)
        tst_fields = {
            "version": "v1",
            "policy": self._policy,
            "message_imprint": imprint,
            "serial_number": self._next_serial(),
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "ordering": False,
            "tsa": asn1_x509.GeneralName(name="directory_name", value=self._cert.subject),
        }
        if req["nonce"].native is not None:
            tst_fields["nonce"] = req["nonce"].native
        tst_info = tsp.TSTInfo(tst_fields)
        tst_der = tst_info.dump()

        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(gen_time)})),
                simple_cms_attribute("message_digest", hashlib.sha256(tst_der).digest()),
                signing_certificate_attribute(self._cert),
            ]
        )
        to_sign = signed_attrs.dump()
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            signature = self._key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
            sig_algo = "sha256_ecdsa"
        else:
            signature = self._key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
            sig_algo = "sha256_rsa"
        digest_algo = algos.DigestAlgorithm({"algorithm": "sha256"})
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value=cms.IssuerAndSerialNumber(
                        {"issuer": self._cert.issuer, "serial_number": self._cert.serial_number}
                    ),
                ),
                "digest_algorithm": digest_algo,
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": sig_algo}),
                "signature": signature,
            }
        )
        signed_data = {
            "version": "v3",
            "digest_algorithms": [digest_algo],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_der),
            },
            "signer_infos": [signer_info],
        }
        if req["cert_req"].native:
            signed_data["certificates"] = [self._cert, *self._chain]
        token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
        return tsp.TimeStampResp(
            {"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token}
        ).dump()


class _LocalTimeStamper(TimeStamper):
    def __init__(self, tsa: TimeStampAuthority) -> None:
        super().__init__(include_nonce=True)
        self._tsa = tsa

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        # Round-trips through DER exactly like the HTTP path, so both are
        # exercised by the same parsing and nonce checks.
        return TimeStampResp.load(self._tsa.respond(req.dump()))


def local_timestamper(tsa: TimeStampAuthority) -> TimeStamper:
    """A pyHanko :class:`TimeStamper` calling ``tsa`` in-process (no HTTP)."""
    return _LocalTimeStamper(tsa)


def http_timestamper(url: str, *, timeout: float = 10.0, auth: tuple[str, str] | None = None) -> TimeStamper:
    """A pyHanko :class:`TimeStamper` for an external RFC 3161 TSA over HTTP(S).

    Failures surface from the sealing functions as :class:`TimestampFailed`.
    """
    return HTTPTimeStamper(url, https=url.lower().startswith("https:"), timeout=timeout, auth=auth)


def make_http_server(tsa: TimeStampAuthority, *, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A minimal stdlib HTTP server answering RFC 3161 POSTs on any path.

    For development, tests and benchmarks; run ``serve_forever`` in a thread
    and ``shutdown`` when done. ``server.server_address`` gives the bound port.
    """

    class _Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get_content_type() != "application/timestamp-query" or not 0 < length <= _MAX_REQUEST:
                self.send_error(415 if length else 400, "expected application/timestamp-query")
                return
            body = tsa.respond(self.rfile.read(length))
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            pass

    return ThreadingHTTPServer((host, port), _Handler)


def timestamp_digest(timestamper: TimeStamper, *, digest: bytes, md_algorithm: str = "sha256") -> bytes:
    """Obtain a time-stamp token (DER ContentInfo) over ``digest``.

    Raises :class:`TimestampFailed` if the TSA refuses or cannot be reached.
    """
    try:
        token = asyncio.run(timestamper.async_timestamp(digest, md_algorithm))
    except Exception as exc:  # noqa: BLE001 - pyHanko raises IOError, aiohttp/requests errors, ValueError
        raise TimestampFailed(REASONS["timestamp_request"].format(detail=exc)) from exc
    return token.dump()
