"""Item seals through the running service, checked with standard tools.

Every test runs on both stacks (embedded; PostgreSQL + SeaweedFS + Redis): the worker
seals, the API serves manifest and seals, and OpenSSL, pyHanko, poppler's pdfsig and the
``evidence`` CLI check them. Tampering is done the way an insider would: files edited
after chmod on the local store, a new object version written over a locked key on S3.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import text

from archive.models import LedgerEntry
from tests.bigpdf import blank_pdf
from tests.conftest import receive_directly
from tests.tools import need, softhsm_module
from signing.cades import extract_timestamp_token, signature_value

# Slow: items sealed by the worker and checked with standard tools.
pytestmark = pytest.mark.slow


def run(*args: object, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, **kw)


def upload(stack, token: str, case: dict, data: bytes, *, kind: str = "other", filename: str = "f.bin") -> dict:
    with stack.client(token) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": kind, "filename": filename}, content=data)
        assert r.status_code == 201, r.text
        return r.json()


def wait_sealed(stack, token: str, item_id: str) -> dict:
    item = stack.wait_item(token, item_id, lambda i: i["seal_status"] in ("sealed", "failed"), timeout=120)
    assert item["seal_status"] == "sealed", item
    return item


def fetch_seals(stack, token: str, item_id: str, where: Path) -> dict[str, Path]:
    """Manifest, CAdES, SM2 seal and the trust chain as files, as a verifier would get them."""
    where.mkdir(parents=True, exist_ok=True)
    with stack.client(token) as c:
        manifest = c.get(f"/api/v1/evidence/{item_id}/manifest")
        cades = c.get(f"/api/v1/evidence/{item_id}/seals/cades")
        sm2 = c.get(f"/api/v1/evidence/{item_id}/seals/sm2")
        chain = c.get("/api/v1/trust/chain.pem")
    for r in (manifest, cades, sm2, chain):
        assert r.status_code == 200, r.text
    assert cades.headers["content-type"] == "application/pkcs7-signature"
    assert manifest.headers["content-type"] == "application/json"
    certs = x509.load_pem_x509_certificates(chain.content)
    roots = [c for c in certs if c.issuer == c.subject]
    tsas = [c for c in certs if any(e.oid == x509.oid.ExtensionOID.EXTENDED_KEY_USAGE for e in c.extensions)]
    assert roots and tsas
    from cryptography.hazmat.primitives.serialization import Encoding

    files = {
        "manifest": manifest.content, "cades": cades.content, "sm2": sm2.content, "chain": chain.content,
        "root": b"".join(c.public_bytes(Encoding.PEM) for c in roots),
        "tsa": b"".join(c.public_bytes(Encoding.PEM) for c in tsas),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = where / name
        paths[name].write_bytes(data)
    return paths


def test_sealed_item_verifies_with_openssl_and_pyhanko(stack, officer, case, tmp_path):
    data = os.urandom(50_000)
    item = upload(stack, officer, case, data)
    assert item["seal_status"] == "pending"
    item = wait_sealed(stack, officer, item["id"])
    roles = {d["role"] for d in item["derived"]}
    assert {"manifest", "cades", "sm2"} <= roles
    f = fetch_seals(stack, officer, item["id"], tmp_path)

    manifest = json.loads(f["manifest"].read_bytes())
    assert manifest["item_id"] == item["id"] and manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["sm3"] == hashlib.new("sm3", data).hexdigest() and manifest["size"] == len(data)
    assert manifest["case_number"] == case["case_number"] and manifest["vault"] == case["vault"]
    # Canonical: sorted keys, no whitespace, UTF-8.
    assert f["manifest"].read_bytes() == json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                                                    ensure_ascii=False).encode()

    openssl = need("openssl")
    r = run(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", f["cades"], "-content", f["manifest"],
            "-CAfile", f["root"], "-out", os.devnull)
    assert r.returncode == 0, r.stderr
    assert "Verification successful" in r.stderr

    token = tmp_path / "tst.der"
    token.write_bytes(extract_timestamp_token(f["cades"].read_bytes()))
    digest = hashlib.sha256(signature_value(f["cades"].read_bytes())).hexdigest()
    r = run(openssl, "ts", "-verify", "-token_in", "-in", token, "-digest", digest,
            "-CAfile", f["root"], "-untrusted", f["tsa"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verification: OK" in r.stdout

    roots = [cert for cert in x509.load_pem_x509_certificates(f["root"].read_bytes())]
    from signing.certs import to_asn1_certificates

    ctx = ValidationContext(trust_roots=to_asn1_certificates(roots), allow_fetching=False)
    signed_data = cms.ContentInfo.load(f["cades"].read_bytes())["content"]
    status = asyncio.run(async_validate_detached_cms(
        f["manifest"].read_bytes(), signed_data, signer_validation_context=ctx, ts_validation_context=ctx))
    assert status.intact and status.valid and status.trusted
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted

    sm2 = json.loads(f["sm2"].read_bytes())
    assert sm2["algorithm"] == "SM2-with-SM3" and sm2["distinguishing_id"] == "1234567812345678"
    (tmp_path / "pub.pem").write_text(sm2["public_key"])
    (tmp_path / "sig.der").write_bytes(base64.b64decode(sm2["signature"]))
    r = run(openssl, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
            "-pubin", "-inkey", tmp_path / "pub.pem", "-in", f["manifest"], "-sigfile", tmp_path / "sig.der")
    assert r.returncode == 0 and "Signature Verified Successfully" in r.stdout, r.stdout + r.stderr

    # Each read of the manifest and seals is a custody entry.
    with stack.services.db.snapshot() as s:
        purposes = [json.loads(e.details)["purpose"] for e in
                    s.query(LedgerEntry).filter_by(item_id=item["id"], action="content_read")]
        sealed = s.query(LedgerEntry).filter_by(item_id=item["id"], action="item_sealed").count()
    assert {"seal:manifest", "seal:cades", "seal:sm2"} <= set(purposes)
    assert sealed == 1

    ok = stack.cli("verify-item", item["id"])
    assert ok.returncode == 0, ok.stderr
    assert "CAdES-B-T seal OK" in ok.stdout and "SM2 seal OK" in ok.stdout


def test_pdf_document_gets_pades_copy(stack, officer, case, tmp_path):
    pdf = blank_pdf()
    item = upload(stack, officer, case, pdf, kind="document", filename="record.pdf")
    item = wait_sealed(stack, officer, item["id"])
    assert "pades" in {d["role"] for d in item["derived"]}, item
    f = fetch_seals(stack, officer, item["id"], tmp_path)
    with stack.client(officer) as c:
        copy = c.get(f"/api/v1/evidence/{item['id']}/derived/pades")
        original = c.get(f"/api/v1/evidence/{item['id']}/content")
    assert copy.status_code == 200 and original.status_code == 200
    assert original.content == pdf, "the original must stay byte-identical"
    assert copy.content.startswith(pdf) and len(copy.content) > len(pdf)
    sealed = tmp_path / "sealed.pdf"
    sealed.write_bytes(copy.content)

    r = run(need("pyhanko"), "sign", "validate", "--pretty-print", "--trust", f["root"], sealed)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "The signer's certificate is trusted" in out, out
    assert "The TSA certificate is trusted" in out and "cryptographically sound" in out, out
    assert "covers the entire file" in out and "judged VALID" in out, out
    r = run(need("pyhanko"), "sign", "validate", "--trust", f["root"], sealed)
    assert r.returncode == 0 and ":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,UNTOUCHED" in r.stdout, r.stdout
    from tests.tools import pdfsig_trusting

    out = pdfsig_trusting(sealed, f["root"])
    assert "Signature is Valid" in out and "Certificate is Trusted" in out and "Total document signed" in out, out


def test_builtin_tsa_answers_openssl(stack, tmp_path):
    openssl = need("openssl")
    data = tmp_path / "f"
    data.write_bytes(b"something to time-stamp\n")
    query = tmp_path / "q.tsq"
    r = run(openssl, "ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
    assert r.returncode == 0, r.stderr
    with stack.client(None) as c:
        reply = c.post("/tsa", content=query.read_bytes(), headers={"Content-Type": "application/timestamp-query"})
        wrong = c.post("/tsa", content=b"x", headers={"Content-Type": "text/plain"})
        chain = c.get("/api/v1/trust/chain.pem")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/timestamp-reply"
    assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "unsupported_media_type"
    (tmp_path / "r.tsr").write_bytes(reply.content)
    certs = x509.load_pem_x509_certificates(chain.content)
    from cryptography.hazmat.primitives.serialization import Encoding

    (tmp_path / "root.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs if c.issuer == c.subject))
    (tmp_path / "tsa.pem").write_bytes(b"".join(
        c.public_bytes(Encoding.PEM) for c in certs
        if any(e.oid == x509.oid.ExtensionOID.EXTENDED_KEY_USAGE for e in c.extensions)))
    r = run(openssl, "ts", "-verify", "-in", tmp_path / "r.tsr", "-queryfile", query,
            "-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "tsa.pem")
    assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr


def _overwrite(stack, key: str, version: str | None, data: bytes, *, repoint: str | None = None) -> None:
    """Replace a stored object as an insider could: edit the file, or write a new S3 version."""
    if stack.name == "embedded":
        path = stack.settings.resolved_storage_dir / key
        path.chmod(0o644)
        path.write_bytes(data)
        return
    store = stack.services.store
    result = store.client.put_object(store.bucket, key, io.BytesIO(data), len(data))
    if repoint:
        with stack.services.db.session() as s:
            s.execute(text(repoint), {"v": result.version_id})


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize("target", ["manifest", "cades", "sm2"])
def test_tampered_seal_objects_are_named(stack, officer, case, target):
    item = upload(stack, officer, case, os.urandom(5000))
    item = wait_sealed(stack, officer, item["id"])
    d = next(x for x in item["derived"] if x["role"] == target)
    with stack.services.db.session() as s:
        row = s.execute(text("SELECT storage_key, storage_version FROM derived_objects WHERE id = :i"),
                        {"i": d["id"]}).one()
    original = b"".join(stack.services.store.read(row.storage_key, version_id=row.storage_version))
    at = len(original) // 2 if target != "sm2" else original.index(b'"signature":"') + 20
    _overwrite(stack, row.storage_key, row.storage_version, _flip(original, at))
    bad = stack.cli("verify-item", item["id"])
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAILED" in bad.stderr and item["id"] in bad.stderr and target in bad.stderr, bad.stderr
    if stack.name == "services":
        # Not fooled by repointing the row at the forged version either: its hash no longer matches.
        with stack.services.db.session() as s:
            newest = stack.services.store.stat(row.storage_key).version_id
            s.execute(text("UPDATE derived_objects SET storage_version = :v WHERE id = :i"),
                      {"v": newest, "i": d["id"]})
        bad = stack.cli("verify-item", item["id"])
        assert bad.returncode == 1 and target in bad.stderr, bad.stderr


def test_tampered_original_and_seal_row_are_named(stack, officer, case):
    data = os.urandom(8000)
    item = wait_sealed(stack, officer, upload(stack, officer, case, data)["id"])
    # An insider "fixes" the recorded hash in the manifest's row: the CAdES seal still catches it.
    with stack.services.db.session() as s:
        s.execute(text("UPDATE evidence_items SET media_type = 'text/plain' WHERE id = :i"), {"i": item["id"]})
    bad = stack.cli("verify-item", item["id"])
    assert bad.returncode == 1 and "manifest" in bad.stderr and "media_type" in bad.stderr, bad.stderr
    with stack.services.db.session() as s:
        s.execute(text("UPDATE evidence_items SET media_type = :m WHERE id = :i"),
                  {"m": item["media_type"], "i": item["id"]})
    assert stack.cli("verify-item", item["id"]).returncode == 0
    # The SHA-512 exports list is taken with SM3 and is not in the sealed manifest: the
    # re-hash catches an edit of it.
    assert item["sha512"] == hashlib.sha512(data).hexdigest()
    with stack.services.db.session() as s:
        s.execute(text("UPDATE evidence_items SET sha512 = :h WHERE id = :i"),
                  {"h": hashlib.sha512(b"other").hexdigest(), "i": item["id"]})
    bad = stack.cli("verify-item", item["id"])
    assert bad.returncode == 1 and "sha512 differs" in bad.stderr, bad.stderr
    with stack.services.db.session() as s:
        s.execute(text("UPDATE evidence_items SET sha512 = :h WHERE id = :i"), {"h": item["sha512"], "i": item["id"]})
    assert stack.cli("verify-item", item["id"]).returncode == 0
    _overwrite(stack, item["storage_key"], item["storage_version"], _flip(data, 100),
               repoint=f"UPDATE evidence_items SET storage_version = :v WHERE id = '{item['id']}'")
    bad = stack.cli("verify-item", item["id"])
    assert bad.returncode == 1 and "sha256" in bad.stderr, bad.stderr


def test_seals_survive_key_rotation(stack, officer, case, tmp_path):
    before = wait_sealed(stack, officer, upload(stack, officer, case, b"before rotation")["id"])
    r = stack.cli("keys", "rotate")
    assert r.returncode == 0, r.stderr
    after = wait_sealed(stack, officer, upload(stack, officer, case, b"after rotation")["id"])
    signers = []
    for item in (before, after):
        assert stack.cli("verify-item", item["id"]).returncode == 0
        f = fetch_seals(stack, officer, item["id"], tmp_path / item["id"])
        r = run(need("openssl"), "cms", "-verify", "-binary", "-inform", "DER", "-in", f["cades"],
                "-content", f["manifest"], "-CAfile", f["root"], "-out", os.devnull)
        assert r.returncode == 0, r.stderr
        info = cms.ContentInfo.load(f["cades"].read_bytes())["content"]
        signers.append(info["signer_infos"][0]["sid"].chosen["serial_number"].native)
        chain = f["chain"].read_bytes()
    assert signers[0] != signers[1], "new seals must use the new key"
    # Both e-seal certificates are published.
    serials = {c.serial_number for c in x509.load_pem_x509_certificates(chain)}
    assert set(signers) <= serials


def test_keys_init_is_idempotent(stack):
    first = stack.cli("keys", "init")
    second = stack.cli("keys", "init")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout and "root_cert:" in first.stdout
    assert "already present" in second.stderr


def test_unknown_item_seal_is_404(stack, officer):
    with stack.client(officer) as c:
        r = c.get(f"/api/v1/evidence/{uuid.uuid4()}/seals/cades")
    assert r.status_code == 404 and r.json()["error"]["code"] == "item_not_found"




def pkcs11_scenario() -> None:
    """Run in a fresh process (SoftHSM2 reads its configuration once per process):
    receive an item, seal it and a checkpoint through a Sealer on the token, verify both."""
    from archive import db as archive_db
    from archive.custody.checkpoints import create_checkpoint
    from archive.seals.items import seal_item
    from archive.seals.sealer import Sealer
    from archive.cases.service import create_case
    from archive.db import Database
    from archive.evidence.fixity import compute_sm3
    from archive.evidence.receiving import IncomingEvidence, receive_original
    from archive.models import EvidenceKind
    from archive.settings import load_settings
    from archive.storage import open_store
    from archive.identity.users import add_user
    from archive.cases.verification import verify_item

    settings = load_settings()
    archive_db.upgrade(settings)
    database, store = Database(settings), open_store(settings)
    sealer = Sealer(settings)
    assert sealer.source == "pkcs11"
    with database.session() as s:
        user, _ = add_user(s, name="hsm-officer", unit="u", role="officer")
        case_id, user_id = create_case(s, store=store, user=user, case_number="HSM-1", title="t").id, user.id
    item = receive_original(db=database, store=store, user_id=user_id, retention_days=1, chunks=[b"on the token"],
                            incoming=IncomingEvidence(case_id=case_id, kind=EvidenceKind.other, filename="x.bin"))
    compute_sm3(db=database, store=store, item_id=item.id)
    record = seal_item(db=database, store=store, sealer=sealer, item_id=item.id)
    with database.session() as s:
        cp = create_checkpoint(s, sealer, store=store)
    report = verify_item(db=database, store=store, sealer=sealer, item_id=item.id, actor="test")
    assert report.sealed and report.checkpoint_id == cp.id and not report.pending, report
    print(json.dumps({"item": item.id, "cades_sha256": record.cades_sha256, "signer": report.cades.signer_cert_sha256}))


def test_sealing_through_pkcs11_softhsm(tmp_path):
    """SoftHSM2 token made here; the e-seal key lives only on it (imported, non-extractable)."""
    from signing import devpki, keys

    module = softhsm_module()
    pki = devpki.create_dev_pki(tmp_path / "pki")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(SOFTHSM2_CONF=str(conf), PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               EVIDENCE_DATA_DIR=str(tmp_path / "data"), EVIDENCE_PKCS11_MODULE=module,
               EVIDENCE_PKCS11_TOKEN_LABEL="archive", EVIDENCE_PKCS11_PIN="1234", EVIDENCE_PKCS11_KEY_LABEL="seal",
               EVIDENCE_SEAL_CERT=str(pki.seal_cert), EVIDENCE_SEAL_CHAIN=str(pki.root_cert),
               EVIDENCE_TRUST_ROOTS=str(pki.root_cert), EVIDENCE_SM2_KEY=str(pki.sm2_key),
               EVIDENCE_SERVE_TSA="true", EVIDENCE_TSA_CERT=str(pki.tsa_cert), EVIDENCE_TSA_KEY=str(pki.tsa_key))
    r = run("softhsm2-util", "--init-token", "--free", "--label", "archive", "--pin", "1234", "--so-pin", "5678",
            env=env)
    assert r.returncode == 0, r.stderr
    # Import in a child process too: this process may already have loaded SoftHSM2 with another configuration.
    r = run(sys.executable, "-c",
            "import sys; from signing.keys import import_key_to_token as i; "
            "i(module_path=sys.argv[1], token_label='archive', pin='1234', key_path=sys.argv[2], "
            "cert_path=sys.argv[3], label='seal')", module, pki.seal_key, pki.seal_cert, env=env)
    assert r.returncode == 0, r.stderr
    pki.seal_key.unlink()  # from now on the key exists only on the token
    r = run(sys.executable, "-c", "from tests.archive.test_sealing import pkcs11_scenario as s; s()", env=env,
            cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    seal_cert = x509.load_pem_x509_certificate(pki.seal_cert.read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    assert result["signer"] == hashlib.sha256(seal_cert.public_bytes(Encoding.DER)).hexdigest()
    verified = run(sys.executable, "-m", "api.cli", "ledger", "verify", env=env,
                   cwd=Path(__file__).resolve().parents[2])
    assert verified.returncode == 0 and "checkpoints OK: 1" in verified.stdout, verified.stdout + verified.stderr


def pades_memory_scenario(pdf: str) -> None:
    """Run in a fresh process with a stack's environment, so tracemalloc sees only this work:
    receive a large scanned PDF as a document, seal it (measuring Python's peak memory) and
    verify it end to end."""
    import tracemalloc

    from archive.seals.items import seal_item
    from archive.seals.sealer import Sealer
    from archive.cases.service import create_case
    from archive.db import Database
    from archive.evidence.fixity import compute_sm3
    from archive.evidence.receiving import IncomingEvidence, receive_original
    from archive.models import EvidenceKind
    from archive.settings import load_settings
    from archive.storage import open_store
    from archive.identity.users import add_user
    from archive.cases.verification import verify_item

    settings = load_settings()
    database, store = Database(settings), open_store(settings)
    sealer = Sealer(settings)
    tag = uuid.uuid4().hex[:8]
    with database.session() as s:
        user, _ = add_user(s, name=f"scanner-{tag}", unit=f"scans-{tag}", role="officer")
        case_id = create_case(s, store=store, user=user, case_number=f"SCAN-{tag}", title="Large scan").id
        user_id = user.id

    def chunks():
        with open(pdf, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    item = receive_original(db=database, store=store, user_id=user_id, retention_days=1, chunks=chunks(),
                            incoming=IncomingEvidence(case_id=case_id, kind=EvidenceKind.document,
                                                      filename="scan.pdf"))
    compute_sm3(db=database, store=store, item_id=item.id)
    tracemalloc.start()
    record = seal_item(db=database, store=store, sealer=sealer, item_id=item.id)
    seal_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Verified through the same path as `evidence verify-item`: the copy is spooled and
    # compared with the original by streaming (not measured: fixity's re-hash has its own bound).
    report = verify_item(db=database, store=store, sealer=sealer, item_id=item.id, actor="test")
    database.dispose()
    print(json.dumps({"item": item.id, "pades_sha256": record.pades_sha256, "seal_peak": seal_peak,
                      "verified_coverage": report.pades.coverage}))


def test_large_scanned_pdf_is_sealed_in_bounded_memory(stack, tmp_path):
    """A 48 MiB scanned PDF gets its PAdES copy without the worker holding it in memory:
    original spooled to a temporary file, copy written to another, compared and stored in
    chunks. The copy extends the original byte for byte and validates (intact, trusted)."""
    from archive.storage.streams import HashingStream
    from signing import verify_pdf
    from tests.bigpdf import same_prefix, write_scanned_pdf

    original = tmp_path / "scan.pdf"
    size = write_scanned_pdf(original, side=4096)
    r = run(sys.executable, "-c", "import sys; from tests.archive.test_sealing import pades_memory_scenario as s; "
            "s(sys.argv[1])", original, env=stack.env, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    # The old code held original and copy in memory: over twice the file. What remains must
    # not grow with the document; besides pyHanko's small buffers it is the fixed buffers
    # other components declare: HashingStream's queue of batches (spooling the original,
    # storing the copy) and, on S3, the multipart parts the backend declares: the parts in
    # flight while the next one is read, which is held twice while it is cut from the stream.
    fixed = (HashingStream.QUEUE_BATCHES + 1) * HashingStream.BATCH
    if stack.settings.storage_backend == "s3":
        fixed += (stack.settings.s3_parallel_parts + 2) * stack.settings.s3_part_size
    assert result["seal_peak"] < size / 4 + fixed, (
        f"sealing a {size}-byte PDF peaked at {result['seal_peak']} bytes of Python memory")
    assert result["verified_coverage"] == "ENTIRE_FILE"

    with stack.services.db.session() as s:
        row = s.execute(text("SELECT storage_key, storage_version, sha256, size FROM derived_objects "
                             "WHERE item_id = :i AND role = 'pades'"), {"i": result["item"]}).one()
    copy = tmp_path / "sealed.pdf"
    digest = hashlib.sha256()
    with open(copy, "wb") as f:
        for chunk in stack.services.store.read(row.storage_key, version_id=row.storage_version):
            digest.update(chunk)
            f.write(chunk)
    assert digest.hexdigest() == row.sha256 == result["pades_sha256"] and copy.stat().st_size == row.size > size
    assert same_prefix(copy, original), "the sealed copy must begin with the original's bytes"

    report = verify_pdf(data=copy, trust_roots=stack.services.sealer.trust_roots())
    assert report.coverage == "ENTIRE_FILE" and report.signature_count == 1


def test_pades_copy_must_extend_the_original(tmp_path):
    """The incremental-update check streams both sides, whatever their chunking, and refuses
    a valid seal over other bytes, a copy shorter than the original, and one flipped byte."""
    from archive.errors import VerificationFailed
    from archive.seals.pades import check_pades_copy
    from archive.seals.sealer import Sealer
    from archive.settings import load_settings

    sealer = Sealer(load_settings(data_dir=tmp_path / "data"))
    pdf = blank_pdf()
    copy = tmp_path / "copy.pdf"
    with open(copy, "w+b") as out:
        sealer.seal_pdf(pdf, out)
    odd_chunks = [pdf[i:i + 7] for i in range(0, len(pdf), 7)]
    with open(copy, "rb") as f:
        assert check_pades_copy(sealer, iter(odd_chunks), f).coverage == "ENTIRE_FILE"
    assert check_pades_copy(sealer, pdf, copy.read_bytes()).signature_count == 1

    other = pdf.replace(b"0 0 1 rg", b"1 0 0 rg")
    assert other != pdf and len(other) == len(pdf)
    for original in (other, pdf + copy.read_bytes()):
        with open(copy, "rb") as f, pytest.raises(VerificationFailed, match="does not begin with the original"):
            check_pades_copy(sealer, original, f)
    with pytest.raises(VerificationFailed, match="does not begin with the original"):
        check_pades_copy(sealer, pdf, _flip(copy.read_bytes(), len(pdf) // 2))


def _received_pdf(stack, case: dict, pdf: bytes) -> str:
    return receive_directly(stack, case, pdf, kind="document", filename="r.pdf")


def _interrupted_seal(stack, item_id: str):  # type: ignore[no-untyped-def]
    """What a seal run killed after writing its objects leaves: locked objects, no rows."""
    from archive.seals.items import _make_seal_objects  # noqa: SLF001
    from archive.seals.manifests import build_manifest
    from archive.models import EvidenceItem, EvidenceKind

    with stack.services.db.session() as session:
        item = session.get(EvidenceItem, item_id)
        args = dict(
            item_id=item_id, vault=item.vault.name, manifest=build_manifest(session, item),
            until=item.retention_until, wants_pdf=item.kind == EvidenceKind.document,
            snapshot={"sha256": item.sha256, "size": item.size, "key": item.storage_key,
                      "version": item.storage_version},
        )
    sealer = stack.services.sealer
    return _make_seal_objects(store=stack.services.store, sealer=sealer, **args)  # noqa: SLF001


def test_retried_pdf_seal_reuses_the_copy_it_left(stack, case):
    """The PAdES copy an interrupted run stored is checked (streamed, not loaded) and reused:
    the retry neither fails on the existing object nor records a different copy."""
    from archive.seals.items import seal_item

    item_id = _received_pdf(stack, case, blank_pdf())
    left = _interrupted_seal(stack, item_id).stored["pades"]
    record = seal_item(db=stack.services.db, store=stack.services.store,
                       sealer=stack.services.sealer, item_id=item_id)
    assert record.pades_sha256 == left.sha256
    with stack.services.db.session() as s:
        row = s.execute(text("SELECT storage_key, storage_version, size FROM derived_objects "
                             "WHERE item_id = :i AND role = 'pades'"), {"i": item_id}).one()
    assert (row.storage_key, row.storage_version, row.size) == (left.key, left.stored.version_id, left.size)
    assert stack.cli("verify-item", item_id).returncode == 0


def test_foreign_pades_copy_at_the_key_is_refused(stack, case):
    """An insider puts a validly sealed copy of *another* PDF where this item's interrupted
    run left its copy: the retry does not take it for this item's copy, the item is failed."""
    from archive.seals.errors import SealingFailed
    from archive.seals.items import seal_item
    from archive.models import EvidenceItem

    pdf = blank_pdf()
    item_id = _received_pdf(stack, case, pdf)
    other = _received_pdf(stack, case, pdf.replace(b"0 0 1 rg", b"1 0 0 rg"))
    left = _interrupted_seal(stack, item_id).stored["pades"]
    foreign = _interrupted_seal(stack, other).stored["pades"]
    store = stack.services.store
    _overwrite(stack, left.key, left.stored.version_id,
               b"".join(store.read(foreign.key, version_id=foreign.stored.version_id)))
    with pytest.raises(SealingFailed, match="earlier, invalid PAdES copy") as failed:
        seal_item(db=stack.services.db, store=store, sealer=stack.services.sealer, item_id=item_id)
    assert "does not begin with the original's bytes" in failed.value.__cause__.message
    with stack.services.db.session() as s:
        assert s.get(EvidenceItem, item_id).seal_status == "failed"


def full_temporary_space_scenario(pdf: str) -> None:
    """Run in a fresh process: seal a received PDF while no file may grow past half its size
    (RLIMIT_FSIZE, as on a full temporary directory), then again without the limit."""
    import resource
    import signal

    from archive import db as archive_db
    from archive.seals.errors import SealingFailed
    from archive.seals.items import seal_item
    from archive.seals.sealer import Sealer
    from archive.cases.service import create_case
    from archive.db import Database
    from archive.evidence.fixity import compute_sm3
    from archive.evidence.receiving import IncomingEvidence, receive_original
    from archive.models import EvidenceItem, EvidenceKind
    from archive.settings import load_settings
    from archive.storage import open_store
    from archive.identity.users import add_user

    settings = load_settings()
    archive_db.upgrade(settings)
    database, store = Database(settings), open_store(settings)
    sealer = Sealer(settings)
    with database.session() as s:
        user, _ = add_user(s, name="scanner", unit="u", role="officer")
        case_id, user_id = create_case(s, store=store, user=user, case_number="TMP-1", title="t").id, user.id
    data = Path(pdf).read_bytes()
    item = receive_original(db=database, store=store, user_id=user_id, retention_days=1, chunks=[data],
                            incoming=IncomingEvidence(case_id=case_id, kind=EvidenceKind.document, filename="s.pdf"))
    compute_sm3(db=database, store=store, item_id=item.id)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(data) // 2, hard))
    try:
        seal_item(db=database, store=store, sealer=sealer, item_id=item.id)
    except SealingFailed as exc:
        failure = {"code": exc.code, "message": exc.message}
    else:
        failure = None
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with database.session() as s:
        row = s.get(EvidenceItem, item.id)
        after_failure = {"seal_status": row.seal_status, "flags": row.flags, "roles": [d.role for d in row.derived]}
    record = seal_item(db=database, store=store, sealer=sealer, item_id=item.id)
    database.dispose()
    print(json.dumps({"failure": failure, "after_failure": after_failure, "pades_sha256": record.pades_sha256}))


def test_full_temporary_directory_fails_the_seal_and_a_retry_succeeds(tmp_path):
    """A large scan needs room for two temporary files. When the disk is full the seal fails
    (to be run again), and the PDF is *not* recorded as one that cannot get a sealed copy."""
    from tests.bigpdf import write_scanned_pdf

    pdf = tmp_path / "scan.pdf"
    write_scanned_pdf(pdf, side=1024)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(EVIDENCE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    r = run(sys.executable, "-c", "import sys; from tests.archive.test_sealing import full_temporary_space_scenario as s; "
            "s(sys.argv[1])", pdf, env=env, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["failure"] is not None and result["failure"]["code"] == "temporary_space_failed", result
    assert "temporary directory" in result["failure"]["message"], result
    assert result["after_failure"] == {"seal_status": "failed", "flags": [], "roles": []}, result
    assert result["pades_sha256"] is not None


def test_verification_reads_one_snapshot_while_the_item_is_sealed(stack, case):
    """A seal committed between two reads of a verification must not look like tampering.

    The item row is read unsealed, then the worker commits its seal rows and status, then
    the verification reads the derived rows: inside ``Database.snapshot`` it still sees none
    (one consistent state), so a verify-item racing the sealing worker reports the seal as
    pending instead of "seal objects exist but seal_status is pending". The sealing commit
    is not blocked by the reader (SQLite included).
    """
    from archive.seals.items import seal_item
    from archive.cases import verification
    from archive.evidence.fixity import verify_item_fixity
    from archive.models import EvidenceItem

    db = stack.services.db
    item_id = receive_directly(stack, case, os.urandom(50_000))
    fixity = verify_item_fixity(db=db, store=stack.services.store, item_id=item_id, actor="test")
    sealer = stack.services.sealer
    with db.snapshot() as session:
        assert session.get(EvidenceItem, item_id).seal_status == "pending"
        seal_item(db=db, store=stack.services.store, sealer=sealer, item_id=item_id)
        report = verification._verify(session, stack.services.store, sealer, item_id, fixity, False, None, True)  # noqa: SLF001
        assert not report.sealed and any(p.startswith("seal") for p in report.pending), report
    with db.session() as session:
        assert session.get(EvidenceItem, item_id).seal_status == "sealed"
    done = stack.cli("verify-item", item_id)
    assert done.returncode == 0, done.stderr
