import io

import pytest

from signing import pades
from signing.certs import load_certificates
from signing.errors import VerificationError


@pytest.fixture(scope="module")
def sealed(blank_pdf, signer, timestamper) -> bytes:
    source = io.BytesIO(blank_pdf)
    out = io.BytesIO()
    pades.seal_pdf(source=source, output=out, signer=signer, timestamper=timestamper, location="Test")
    return out.getvalue()


def test_original_untouched_and_copy_is_incremental(blank_pdf, signer, timestamper):
    original = bytes(blank_pdf)
    source = io.BytesIO(original)
    out = io.BytesIO()
    pades.seal_pdf(source=source, output=out, signer=signer, timestamper=timestamper)
    assert source.getvalue() == original == blank_pdf
    assert out.getvalue().startswith(original)


def test_verify_pdf(sealed, roots):
    report = pades.verify_pdf(data=sealed, trust_roots=roots)
    assert report.coverage == "ENTIRE_FILE" and report.signature_count == 1
    assert "e-Seal" in report.signer_subject and "Time-Stamping" in report.tsa_subject


def test_later_revision_is_rejected(sealed, roots):
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    writer.root["/Lang"] = generic.TextStringObject("en")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(VerificationError, match="does not cover the whole document"):
        pades.verify_pdf(data=out.getvalue(), trust_roots=roots)


def test_flipped_signed_byte_is_rejected(sealed, roots):
    at = sealed.index(b"re f")
    tampered = sealed[:at] + b"RE f" + sealed[at + 4:]
    with pytest.raises(VerificationError, match="altered"):
        pades.verify_pdf(data=tampered, trust_roots=roots)


def test_untrusted_root_is_rejected(sealed, other_pki):
    with pytest.raises(VerificationError, match="not trusted"):
        pades.verify_pdf(data=sealed, trust_roots=load_certificates(other_pki.root_cert))


def test_unsigned_pdf_is_rejected(blank_pdf, roots):
    with pytest.raises(VerificationError, match="no signature"):
        pades.verify_pdf(data=blank_pdf, trust_roots=roots)


def test_pdfsig_accepts(tmp_path, sealed, pki):
    from tests.tools import pdfsig_trusting

    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    out = pdfsig_trusting(path, pki.root_cert)
    assert "Signature is Valid." in out, out
    assert "Certificate is Trusted." in out, out
    assert "Total document signed" in out
    assert "ETSI.CAdES.detached" in out


def test_pyhanko_cli_accepts(tmp_path, sealed, pki, need, sh):
    import sys
    from pathlib import Path

    cli = Path(sys.executable).with_name("pyhanko")
    if not cli.exists():
        cli = need("pyhanko")
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    res = sh([cli, "sign", "validate", "--pretty-print", "--trust-replace", "--trust", pki.root_cert, path])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "The signer's certificate is trusted." in res.stdout
    assert "The TSA certificate is trusted." in res.stdout
