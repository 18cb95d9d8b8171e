import base64
import hashlib

import pytest

from signing import sm2
from signing.errors import VerificationError


@pytest.fixture(scope="module")
def sm2_key(pki):
    return sm2.load_sm2_private_key(pki.sm2_key)


def test_seal_shape(sm2_key, manifest):
    seal = sm2.sm2_seal(data=manifest, private_key=sm2_key)
    assert seal["algorithm"] == "SM2-with-SM3" and seal["distinguishing_id"] == "1234567812345678"
    assert seal["certificate"] is None and "BEGIN PUBLIC KEY" in seal["public_key"]
    report = sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2_key.public_key)
    assert report.data_sm3 == hashlib.new("sm3", manifest).hexdigest() and report.trusted_by == "expected-key"


def test_openssl_verifies_our_signature(tmp_path, pki, manifest, need, sh):
    need("openssl")
    seal = sm2.sm2_seal(data=manifest, private_key=pki.sm2_key)
    (tmp_path / "data").write_bytes(manifest)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(seal["signature"]))
    (tmp_path / "pub.pem").write_text(seal["public_key"])
    cmd = ["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
           "-pubin", "-inkey", tmp_path / "pub.pem", "-in", tmp_path / "data", "-sigfile", tmp_path / "sig.der"]
    res = sh(cmd)
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr
    (tmp_path / "data").write_bytes(manifest[:-1] + bytes([manifest[-1] ^ 1]))
    assert sh(cmd).returncode != 0


def test_we_verify_openssl_signature(tmp_path, pki, sm2_key, manifest, need, sh):
    need("openssl")
    (tmp_path / "data").write_bytes(manifest)
    res = sh(["openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
              "-inkey", pki.sm2_key, "-in", tmp_path / "data", "-out", tmp_path / "sig.der"])
    assert res.returncode == 0, res.stderr
    seal = {
        "algorithm": "SM2-with-SM3",
        "signature": base64.b64encode((tmp_path / "sig.der").read_bytes()).decode(),
        "public_key": pki.sm2_public.read_text(),
        "distinguishing_id": "1234567812345678",
        "certificate": None,
    }
    sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=pki.sm2_public)


def test_flipped_data_byte_is_rejected(sm2_key, manifest):
    seal = sm2.sm2_seal(data=manifest, private_key=sm2_key)
    tampered = manifest[:3] + bytes([manifest[3] ^ 1]) + manifest[4:]
    with pytest.raises(VerificationError, match="does not match the data"):
        sm2.verify_sm2(data=tampered, seal=seal, expected_public_key=sm2_key.public_key)


def test_flipped_signature_byte_is_rejected(sm2_key, manifest):
    seal = sm2.sm2_seal(data=manifest, private_key=sm2_key)
    sig = bytearray(base64.b64decode(seal["signature"]))
    sig[-1] ^= 1
    seal["signature"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(VerificationError):
        sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2_key.public_key)


def test_other_key_is_rejected_unless_unsafe(sm2_key, manifest):
    other = sm2.generate_sm2_private_key()
    seal = sm2.sm2_seal(data=manifest, private_key=other)
    with pytest.raises(VerificationError, match="different key"):
        sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2_key.public_key)
    report = sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2.UnsafeTrustEmbeddedKey())
    assert report.trusted_by == "unsafe-embedded-key"


def test_key_round_trip(tmp_path):
    key = sm2.generate_sm2_private_key()
    path = tmp_path / "k.pem"
    path.write_bytes(key.private_pem())
    assert sm2.load_sm2_private_key(path) == key
    assert sm2.load_sm2_public_key(key.public_key.public_pem()) == key.public_key


@pytest.mark.parametrize("signer_native, checker_native", [(True, False), (False, True), (False, False)])
def test_openssl_sm2_and_pure_python_sm2_agree(monkeypatch, sm2_key, manifest, signer_native, checker_native):
    """The fast path (OpenSSL's SM2 through tongsuopy) and the pure-Python path make and check
    the same signatures: each accepts the other's, and each refuses altered data."""
    import evidence_verify.sm2 as verify_module
    import signing.sm2 as sign_module

    assert verify_module.native_ec is not None, "tongsuopy is a dependency of the server"
    native = verify_module.native_ec
    monkeypatch.setattr(sign_module, "native_ec", native if signer_native else None)
    seal = sm2.sm2_seal(data=manifest, private_key=sm2_key)
    monkeypatch.setattr(verify_module, "native_ec", native if checker_native else None)
    assert sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2_key.public_key).distinguishing_id \
        == sm2.DEFAULT_DISTINGUISHING_ID
    with pytest.raises(VerificationError, match="does not match"):
        sm2.verify_sm2(data=manifest + b" ", seal=seal, expected_public_key=sm2_key.public_key)


def test_another_distinguishing_id_is_signed_and_checked_in_pure_python(sm2_key, manifest):
    seal = sm2.sm2_seal(data=manifest, private_key=sm2_key, distinguishing_id="ALICE123@YAHOO.COM")
    assert sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2_key.public_key).distinguishing_id \
        == "ALICE123@YAHOO.COM"
    seal["distinguishing_id"] = sm2.DEFAULT_DISTINGUISHING_ID  # the ID is part of what is signed
    with pytest.raises(VerificationError, match="does not match"):
        sm2.verify_sm2(data=manifest, seal=seal, expected_public_key=sm2_key.public_key)
