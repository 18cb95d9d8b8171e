import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from signing import devpki
from signing.errors import PkiError


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_files_exist_and_keys_are_private(pki):
    for key in (pki.root_key, pki.seal_key, pki.tsa_key, pki.sm2_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    chain = x509.load_pem_x509_certificates(pki.chain.read_bytes())
    assert [c.subject for c in chain] == [_cert(p).subject for p in (pki.root_cert, pki.seal_cert, pki.tsa_cert)]


def test_certificate_profiles(pki):
    root, seal, tsa = _cert(pki.root_cert), _cert(pki.seal_cert), _cert(pki.tsa_cert)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = seal.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        seal.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert seal.issuer == tsa.issuer == root.subject


def test_openssl_accepts_chain(pki, need, sh):
    need("openssl")
    res = sh(["openssl", "verify", "-CAfile", pki.root_cert, pki.seal_cert])
    assert res.returncode == 0, res.stderr
    res = sh(["openssl", "verify", "-purpose", "timestampsign", "-CAfile", pki.root_cert, pki.tsa_cert])
    assert res.returncode == 0, res.stderr


def test_ensure_is_idempotent(tmp_path):
    first, created = devpki.ensure_dev_pki(tmp_path / "p")
    assert created
    before = first.seal_key.read_bytes()
    again, created_again = devpki.ensure_dev_pki(tmp_path / "p")
    assert not created_again and again == first and again.seal_key.read_bytes() == before


def test_partial_pki_is_refused(tmp_path):
    pki = devpki.create_dev_pki(tmp_path)
    pki.tsa_key.unlink()
    with pytest.raises(PkiError, match="tsa-key.pem"):
        devpki.ensure_dev_pki(tmp_path)


def test_rotation_keeps_every_seal_certificate(tmp_path):
    pki = devpki.create_dev_pki(tmp_path)
    old_cert, old_key = pki.seal_cert.read_bytes(), pki.seal_key.read_bytes()
    devpki.rotate_seal_key(tmp_path)
    assert pki.seal_key.read_bytes() != old_key
    kept = [p.read_bytes() for p in devpki.seal_certificates(tmp_path)]
    assert old_cert in kept and pki.seal_cert.read_bytes() in kept and len(kept) == 2
    assert pki.seal_cert.read_bytes() in pki.chain.read_bytes()
