import pytest

from signing import cades, keys
from signing.errors import KeyUnavailable


def test_seal_through_softhsm_verifies_with_openssl(tmp_path, softhsm, pki, roots, timestamper, manifest, need, sh):
    with keys.signer_from_pkcs11(
        module_path=softhsm["module"], token_label=softhsm["token"], pin=softhsm["pin"],
        key_label=softhsm["label"], chain_paths=[pki.root_cert],
    ) as signer:
        seal = cades.seal_detached(data=manifest, signer=signer, timestamper=timestamper)
    report = cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)
    assert "e-Seal" in report.signer_subject
    need("openssl")
    (tmp_path / "SEAL").write_bytes(seal)
    (tmp_path / "MANIFEST").write_bytes(manifest)
    res = sh(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "SEAL",
              "-content", tmp_path / "MANIFEST", "-CAfile", pki.root_cert, "-out", tmp_path / "out"])
    assert res.returncode == 0, res.stderr


def test_certificate_from_file(softhsm, pki, roots, timestamper, manifest):
    with keys.signer_from_pkcs11(
        module_path=softhsm["module"], token_label=softhsm["token"], pin=softhsm["pin"],
        key_label=softhsm["label"], cert_path=pki.seal_cert,
    ) as signer:
        seal = cades.seal_detached(data=manifest, signer=signer, timestamper=timestamper)
    cades.verify_detached(data=manifest, seal=seal, trust_roots=roots)


def test_wrong_pin_is_key_unavailable(softhsm):
    with pytest.raises(KeyUnavailable):
        keys.signer_from_pkcs11(
            module_path=softhsm["module"], token_label=softhsm["token"], pin="0000", key_label=softhsm["label"]
        )


def test_missing_key_is_key_unavailable(softhsm):
    with pytest.raises(KeyUnavailable, match="nope"):
        keys.signer_from_pkcs11(
            module_path=softhsm["module"], token_label=softhsm["token"], pin=softhsm["pin"], key_label="nope"
        )


def test_key_file_mismatch_is_key_unavailable(pki, other_pki):
    with pytest.raises(KeyUnavailable, match="does not belong"):
        keys.signer_from_files(key_path=other_pki.seal_key, cert_path=pki.seal_cert)
