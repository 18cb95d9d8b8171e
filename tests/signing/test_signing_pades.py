import hashlib
import io
import tracemalloc

import pytest

from signing import pades, tsa
from signing.certs import load_certificates
from signing.errors import TimestampFailed, VerificationError
from tests.bigpdf import same_prefix, write_scanned_pdf


class Unseekable(io.RawIOBase):
    """A pipe-like stream over bytes: readable once, front to back, no seeking."""

    def __init__(self, data: bytes):
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._inner.readinto(buffer)


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


def test_files_paths_and_pipes_are_accepted(tmp_path, blank_pdf, signer, timestamper, roots):
    """Sources and copies need not be bytes: a path, an open file, a stream that cannot seek."""
    source = tmp_path / "in.pdf"
    source.write_bytes(blank_pdf)
    copy = tmp_path / "copy.pdf"
    with open(copy, "w+b") as out:
        pades.seal_pdf(source=source, output=out, signer=signer, timestamper=timestamper)
    with open(copy, "rb") as f:
        assert pades.verify_pdf(data=f, trust_roots=roots).coverage == "ENTIRE_FILE"
    assert pades.verify_pdf(data=copy, trust_roots=roots).signature_count == 1
    assert pades.verify_pdf(data=io.BufferedReader(Unseekable(copy.read_bytes())), trust_roots=roots)
    piped = io.BytesIO()
    pades.seal_pdf(source=io.BufferedReader(Unseekable(blank_pdf)), output=piped, signer=signer,
                   timestamper=timestamper)
    assert piped.getvalue().startswith(blank_pdf)
    assert pades.verify_pdf(data=piped.getvalue(), trust_roots=roots).coverage == "ENTIRE_FILE"
    assert source.read_bytes() == blank_pdf


def test_unreachable_tsa_is_timestamp_failed(blank_pdf, signer):
    stamper = tsa.http_timestamper("http://127.0.0.1:9/tsa", timeout=2)
    with pytest.raises(TimestampFailed):
        pades.seal_pdf(source=blank_pdf, output=io.BytesIO(), signer=signer, timestamper=stamper)


def test_unwritable_output_is_an_os_error_not_a_tsa_outage(tmp_path, blank_pdf, signer, timestamper):
    """The caller's file failing is the caller's to handle (a full disk is not a TSA to retry)."""
    target = tmp_path / "copy.pdf"
    target.write_bytes(b"")
    with open(target, "rb") as read_only, pytest.raises(OSError, match="not writable"):
        pades.seal_pdf(source=blank_pdf, output=read_only, signer=signer, timestamper=timestamper)


def test_large_pdf_is_sealed_and_verified_without_loading_it(tmp_path, signer, timestamper, roots):
    """A 48 MiB scan is sealed from a file into a file, and the copy verified from the file,
    with Python's peak memory a small fraction of the document (pyHanko reads and digests
    in chunks); the copy extends the untouched original byte for byte."""
    original = tmp_path / "scan.pdf"
    size = write_scanned_pdf(original, side=4096)
    before = hashlib.sha256(original.read_bytes()).hexdigest()
    sealed = tmp_path / "sealed.pdf"
    tracemalloc.start()
    try:
        with open(sealed, "w+b") as out:
            pades.seal_pdf(source=original, output=out, signer=signer, timestamper=timestamper)
        seal_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with open(sealed, "rb") as copy:
            report = pades.verify_pdf(data=copy, trust_roots=roots)
        verify_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size > 48 * 2**20
    assert seal_peak < size / 16, f"sealing a {size}-byte PDF peaked at {seal_peak} bytes of Python memory"
    assert verify_peak < size / 16, f"verifying a {size}-byte PDF peaked at {verify_peak} bytes of Python memory"
    assert report.coverage == "ENTIRE_FILE" and report.signature_count == 1
    assert "Time-Stamping" in report.tsa_subject
    assert sealed.stat().st_size > size and same_prefix(sealed, original)
    assert hashlib.sha256(original.read_bytes()).hexdigest() == before


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


def test_a_signed_pdf_is_sealed_in_a_new_field_keeping_its_signatures(blank_pdf, signer, timestamper, roots):
    """A PDF signed already (an inspection record, signed when made, in the field our seal
    uses) gets its sealed copy in a new field; the earlier signature stays valid beside it."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    once = io.BytesIO()
    pades.seal_pdf(source=blank_pdf, output=once, signer=signer, timestamper=timestamper)
    twice = io.BytesIO()
    pades.seal_pdf(source=once.getvalue(), output=twice, signer=signer, timestamper=timestamper)
    thrice = io.BytesIO()
    pades.seal_pdf(source=twice.getvalue(), output=thrice, signer=signer, timestamper=timestamper)
    assert twice.getvalue().startswith(once.getvalue()) and thrice.getvalue().startswith(twice.getvalue())
    report = pades.verify_pdf(data=thrice.getvalue(), trust_roots=roots)
    assert report.signature_count == 3 and report.field_name == "EvidenceSeal3"
    assert report.coverage == "ENTIRE_FILE"
    names = [s.field_name for s in PdfFileReader(io.BytesIO(thrice.getvalue())).embedded_regular_signatures]
    assert names == ["EvidenceSeal", "EvidenceSeal2", "EvidenceSeal3"]


def test_someone_elses_signature_stays_intact_under_our_seal(blank_pdf, signer, timestamper, roots, other_pki):
    """A document e-sealed elsewhere (another organisation's PKI) in a field of the same name
    gets our seal in a new field; both verify, each against its own roots."""
    from signing import keys

    theirs = io.BytesIO()
    pades.seal_pdf(source=blank_pdf, output=theirs, timestamper=timestamper,
                   signer=keys.signer_from_files(key_path=other_pki.seal_key, cert_path=other_pki.seal_cert,
                                                 chain_paths=[other_pki.root_cert]))
    ours = io.BytesIO()
    pades.seal_pdf(source=theirs.getvalue(), output=ours, signer=signer, timestamper=timestamper)
    both = load_certificates(other_pki.root_cert) + list(roots)
    report = pades.verify_pdf(data=ours.getvalue(), trust_roots=both, tsa_trust_roots=roots)
    assert report.signature_count == 2 and report.field_name == "EvidenceSeal2"
    assert "e-Seal" in report.signer_subject and "Someone Else" not in report.signer_subject
    # Checked as our sealed copy of that original, their signature is theirs to answer for:
    # ours holds with our roots alone; without saying where the original ends, theirs is judged.
    copy = pades.verify_pdf(data=ours.getvalue(), trust_roots=roots, original_size=len(theirs.getvalue()))
    assert copy.field_name == "EvidenceSeal2" and copy.signature_count == 2
    with pytest.raises(VerificationError, match="'EvidenceSeal'.*not trusted"):
        pades.verify_pdf(data=ours.getvalue(), trust_roots=roots)
    # An original whose only signature is someone else's is no sealed copy of ours.
    with pytest.raises(VerificationError, match="not trusted"):
        pades.verify_pdf(data=theirs.getvalue(), trust_roots=roots, original_size=len(theirs.getvalue()))
