import hashlib
import random

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from signing import cades, devpki, keys
from signing.certs import load_certificates
from signing.errors import VerificationError


@pytest.fixture
def seal(signer, timestamper, manifest) -> bytes:
    return cades.seal_detached(data=manifest, signer=signer, timestamper=timestamper)


def _flip(blob: bytes, needle: bytes, *, from_end: int = 1) -> bytes:
    """Flip the last-but-``from_end`` byte of the first occurrence of ``needle``."""
    at = blob.index(needle) + len(needle) - from_end
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1:]


def test_report(seal, manifest, roots, pki):
    report = cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)
    assert "e-Seal" in report.signer_subject
    seal_cert = load_certificates(pki.seal_cert)[0]
    assert report.signer_cert_sha256 == hashlib.sha256(seal_cert.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER)).hexdigest()
    assert report.chain_subjects[0].startswith("CN=Evidence Archive (DEVELOPMENT) Root CA")
    assert report.digest_algorithm == "sha256" and report.signature_algorithm == "sha256_ecdsa"
    assert "Time-Stamping Authority" in report.tsa_subject
    assert report.signing_time is not None
    assert abs((report.timestamp_time - report.signing_time).total_seconds()) <= 2


def test_cades_attributes_present(seal):
    signer_info = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]
    signed = {a["type"].native for a in signer_info["signed_attrs"]}
    unsigned = {a["type"].native for a in signer_info["unsigned_attrs"]}
    assert {"content_type", "message_digest", "signing_certificate_v2"} <= signed
    assert unsigned == {"signature_time_stamp_token"}


def test_openssl_cms_verify_plain_command(tmp_path, seal, manifest, pki, need, sh):
    need("openssl")
    (tmp_path / "SEAL").write_bytes(seal)
    (tmp_path / "MANIFEST").write_bytes(manifest)
    res = sh(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "SEAL",
              "-content", tmp_path / "MANIFEST", "-CAfile", pki.root_cert, "-out", tmp_path / "out"])
    assert res.returncode == 0 and "Verification successful" in res.stderr, res.stderr
    (tmp_path / "MANIFEST").write_bytes(manifest + b" ")
    res = sh(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "SEAL",
              "-content", tmp_path / "MANIFEST", "-CAfile", pki.root_cert, "-out", tmp_path / "out"])
    assert res.returncode != 0


def test_timestamp_token_verifies_with_openssl(tmp_path, seal, pki, need, sh):
    need("openssl")
    token = tmp_path / "token.der"
    token.write_bytes(cades.extract_timestamp_token(seal))
    digest = hashlib.sha256(cades.signature_value(seal)).hexdigest()
    res = sh(["openssl", "ts", "-verify", "-token_in", "-in", token, "-digest", digest,
              "-CAfile", pki.root_cert, "-untrusted", pki.tsa_cert])
    assert res.returncode == 0 and "Verification: OK" in res.stdout, res.stderr


def test_flipped_data_byte(seal, manifest, roots):
    tampered = bytearray(manifest)
    tampered[5] ^= 0x01
    with pytest.raises(VerificationError, match="data does not match"):
        cades.verify_detached(data=bytes(tampered), seal=seal, trust_roots=roots)


def test_flipped_signature_byte(seal, manifest, roots):
    sig = cades.signature_value(seal)
    with pytest.raises(VerificationError, match="seal signature is invalid"):
        cades.verify_detached(data=manifest, seal=_flip(seal, sig), trust_roots=roots)


def test_flipped_message_digest_attribute(seal, manifest, roots):
    digest = hashlib.sha256(manifest).digest()
    with pytest.raises(VerificationError, match="data does not match|seal signature is invalid"):
        cades.verify_detached(data=manifest, seal=_flip(seal, digest), trust_roots=roots)


def test_flipped_token_signature(seal, manifest, roots):
    token = cms.ContentInfo.load(cades.extract_timestamp_token(seal))
    token_sig = token["content"]["signer_infos"][0]["signature"].native
    with pytest.raises(VerificationError, match="time-stamp token signature is invalid"):
        cades.verify_detached(data=manifest, seal=_flip(seal, token_sig), trust_roots=roots)


def test_flipped_token_imprint(seal, manifest, roots):
    imprint = hashlib.sha256(cades.signature_value(seal)).digest()
    with pytest.raises(VerificationError, match="time-stamp token"):
        cades.verify_detached(data=manifest, seal=_flip(seal, imprint), trust_roots=roots)


@pytest.mark.slow  # a verification per flipped byte of the SignerInfo
def test_flipped_bytes_in_signer_info_raise_verification_error(seal, manifest, roots):
    """Sweep the SignerInfo: every 7th byte up to the end of the signature value, and
    40 seeded positions in the time-stamp token after it (1.5 KB, mostly the TSA's
    certificates; each check is a full validation, and sweeping it all took over a minute).

    Up to the end of the signature value every flip must raise our
    VerificationError. In the time-stamp token a few outer fields are not
    covered by the TSA's signature (its SignedData version, digestAlgorithms
    set: CMS is malleable there); a flip there may pass, but then with the
    same verdict, and any failure must still be a VerificationError.
    """
    signer_info = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]
    start = seal.index(signer_info.dump())
    end = start + len(signer_info.dump())
    signature = cades.signature_value(seal)
    strict_end = seal.index(signature, start) + len(signature)
    baseline = cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)
    token = range(strict_end, end)
    positions = [*range(start + 2, strict_end, 7), *sorted(random.Random(7).sample(token, min(40, len(token))))]
    for at in positions:
        tampered = seal[:at] + bytes([seal[at] ^ 0x01]) + seal[at + 1:]
        if at < strict_end:
            with pytest.raises(VerificationError):
                cades.verify_detached(data=manifest, seal=tampered, trust_roots=roots)
            continue
        try:
            report = cades.verify_detached(data=manifest, seal=tampered, trust_roots=roots)
        except VerificationError:
            continue
        assert report == baseline


def test_a_damaged_certificate_fails_after_the_intact_seal_verified(seal, manifest, roots):
    """The verifier parses a certificate it has met before only once: a seal carrying the
    e-seal's certificate with one byte changed (its tag, a length, a name, its key or
    signature) is a new encoding, parsed and checked in full, and fails, though the intact seal
    verified just before and verifies again after. A changed byte in the seal's copy of the
    root may pass (the trusted root is the verifier's own), but then with the same verdict."""
    baseline = cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)
    trusted = {root.fingerprint(hashes.SHA256()) for root in roots}
    for choice in cms.ContentInfo.load(seal)["content"]["certificates"]:
        certificate = choice.chosen.dump()
        is_root = x509.load_der_x509_certificate(certificate).fingerprint(hashes.SHA256()) in trusted
        start = seal.index(certificate)
        for at in (*range(start, start + 8), *range(start + 8, start + len(certificate), 37)):
            tampered = seal[:at] + bytes([seal[at] ^ 0x01]) + seal[at + 1:]
            if not is_root:
                with pytest.raises(VerificationError):
                    cades.verify_detached(data=manifest, seal=tampered, trust_roots=roots)
                continue
            try:
                assert cades.verify_detached(data=manifest, seal=tampered, trust_roots=roots) == baseline
            except VerificationError:
                pass
    assert cades.verify_detached(data=manifest, seal=seal, trust_roots=roots) == baseline


def test_untrusted_root_is_rejected(seal, manifest, roots, other_pki):
    """Also when the same process has just trusted the seal's own roots (each set of roots has
    its anchors built once and kept), and the other way round."""
    cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)
    with pytest.raises(VerificationError, match="not trusted"):
        cades.verify_detached(data=manifest, seal=seal, trust_roots=load_certificates(other_pki.root_cert))
    with pytest.raises(VerificationError, match="not trusted"):
        cades.verify_detached(data=manifest, seal=seal, trust_roots=roots, tsa_trust_roots=load_certificates(
            other_pki.root_cert))
    cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)


def test_threads_verifying_at_once_never_see_a_root_half_read(seal, manifest, roots):
    """Several threads verify seals at once, each round with roots no thread has built yet (a
    worker's threads after start-up): every seal verifies. Sharing one set of built roots,
    a thread read a root's key another thread was still parsing and a good seal failed."""
    from evidence_verify import cades as verifier

    from tests.tools import at_once

    for _round in range(10):
        verifier._TRUST.__dict__.pop("managers", None)
        results = at_once(8, lambda i: cades.verify_detached(data=manifest, seal=seal, trust_roots=roots))
        assert not [r for r in results if isinstance(r, BaseException)], results


def test_no_roots_is_rejected(seal, manifest):
    with pytest.raises(VerificationError, match="no trust roots"):
        cades.verify_detached(data=manifest, seal=seal, trust_roots=[])


def test_seal_without_timestamp_is_rejected(signer, manifest, roots):
    seal = cades.seal_detached(data=manifest, signer=signer, timestamper=None)
    with pytest.raises(VerificationError, match="time-stamp"):
        cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)


def test_garbage_is_rejected(manifest, roots):
    for blob in (b"", b"\x30\x80", b"hello", b"\x30\x03\x06\x01\x00"):
        with pytest.raises(VerificationError):
            cades.verify_detached(data=manifest, seal=blob, trust_roots=roots)


def test_seals_made_before_rotation_still_verify(tmp_path, manifest, need, sh):
    pki = devpki.create_dev_pki(tmp_path / "pki")
    from signing import tsa

    stamper = tsa.local_timestamper(tsa.TimeStampAuthority.from_files(cert_path=pki.tsa_cert, key_path=pki.tsa_key))
    before = cades.seal_detached(
        data=manifest, signer=keys.signer_from_files(key_path=pki.seal_key, cert_path=pki.seal_cert),
        timestamper=stamper,
    )
    devpki.rotate_seal_key(pki.directory)
    after = cades.seal_detached(
        data=manifest, signer=keys.signer_from_files(key_path=pki.seal_key, cert_path=pki.seal_cert),
        timestamper=stamper,
    )
    roots = load_certificates(pki.root_cert)
    r1 = cades.verify_detached(data=manifest, seal=before, trust_roots=roots)
    r2 = cades.verify_detached(data=manifest, seal=after, trust_roots=roots)
    assert r1.signer_cert_sha256 != r2.signer_cert_sha256
    kept = {hashlib.sha256(load_certificates(p)[0].public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER)).hexdigest() for p in devpki.seal_certificates(pki.directory)}
    assert {r1.signer_cert_sha256, r2.signer_cert_sha256} == kept
    need("openssl")
    (tmp_path / "SEAL").write_bytes(before)
    (tmp_path / "MANIFEST").write_bytes(manifest)
    res = sh(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "SEAL",
              "-content", tmp_path / "MANIFEST", "-CAfile", pki.root_cert, "-out", tmp_path / "out"])
    assert res.returncode == 0, res.stderr


def test_seal_outlives_its_certificates(tmp_path, manifest):
    """A seal time-stamped while its certificates were valid still verifies after they expire."""
    from datetime import datetime, timedelta, timezone

    from signing import devpki as _devpki
    from signing import keys as _keys
    from signing import tsa as _tsa
    from signing.cades import seal_detached as _seal, verify_detached as _verify
    from signing.certs import load_certificates

    then = datetime.now(timezone.utc) - timedelta(days=11 * 365)  # seal (5 y) and TSA (10 y) certs expired
    old = _devpki.create_dev_pki(tmp_path / "old", now=then)
    authority = _tsa.TimeStampAuthority(
        cert=load_certificates(old.tsa_cert)[0], key=_keys.load_private_key(old.tsa_key),
        clock=lambda: then + timedelta(days=1),
    )
    seal = _seal(data=manifest, signer=_keys.signer_from_files(key_path=old.seal_key, cert_path=old.seal_cert),
                 timestamper=_tsa.local_timestamper(authority))
    roots = load_certificates(old.root_cert)
    report = _verify(data=manifest, seal=seal, trust_roots=roots)
    assert report.timestamp_time.date() == (then + timedelta(days=1)).date()
    with pytest.raises(VerificationError):
        _verify(data=manifest, seal=seal, trust_roots=roots, validation_time=datetime.now(timezone.utc))


def _signing_certificate_attribute(seal: bytes) -> bytes:
    signer_info = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]
    (attribute,) = [a for a in signer_info["signed_attrs"] if a["type"].native == "signing_certificate_v2"]
    return attribute.dump()


def test_every_seal_names_its_own_signing_certificate(tmp_path, manifest, roots, other_pki, timestamper):
    """The signing-certificate-v2 attribute, encoded once per certificate, is in each seal
    exactly as pyHanko encodes it for that certificate; a signer whose certificate is another
    (another key, after a rotation) names that one, and every seal still verifies."""
    from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute

    rotated = devpki.create_dev_pki(tmp_path / "rotated")
    for pki in (rotated, other_pki):
        signer = keys.signer_from_files(key_path=pki.seal_key, cert_path=pki.seal_cert, chain_paths=[pki.root_cert])
        expected = simple_cms_attribute("signing_certificate_v2", as_signing_certificate_v2(signer.signing_cert)).dump()
        seals = [cades.seal_detached(data=manifest + bytes([i]), signer=signer, timestamper=timestamper)
                 for i in range(3)]
        assert {_signing_certificate_attribute(s) for s in seals} == {expected}
        trust = [*roots, *load_certificates(pki.root_cert)]  # the seal's root and the TSA's
        for i, s in enumerate(seals):
            report = cades.verify_detached(data=manifest + bytes([i]), seal=s, trust_roots=trust)
            assert report.signer_cert_sha256 == hashlib.sha256(signer.signing_cert.dump()).hexdigest()
    assert _signing_certificate_attribute(seals[0]) != _signing_certificate_attribute(
        cades.seal_detached(data=manifest, signer=keys.signer_from_files(
            key_path=rotated.seal_key, cert_path=rotated.seal_cert, chain_paths=[rotated.root_cert]),
            timestamper=timestamper))
