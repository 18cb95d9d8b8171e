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
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import text

from archive.models import LedgerEntry
from signing.cades import extract_timestamp_token, signature_value


def need(tool: str) -> str:
    path = shutil.which(tool) or (str(Path(sys.executable).parent / tool) if (Path(sys.executable).parent / tool).exists() else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed")
        pytest.skip(f"{tool} is not installed")
    return path


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
    with stack.services.db.session() as s:
        purposes = [json.loads(e.details)["purpose"] for e in
                    s.query(LedgerEntry).filter_by(item_id=item["id"], action="content_read")]
        sealed = s.query(LedgerEntry).filter_by(item_id=item["id"], action="item_sealed").count()
    assert {"seal:manifest", "seal:cades", "seal:sm2"} <= set(purposes)
    assert sealed == 1

    ok = stack.cli("verify-item", item["id"])
    assert ok.returncode == 0, ok.stderr
    assert "CAdES-B-T seal OK" in ok.stdout and "SM2 seal OK" in ok.stdout


def blank_pdf() -> bytes:
    writer = PdfFileWriter()
    contents = writer.add_object(generic.StreamObject(stream_data=b"0 0 1 rg 100 100 200 200 re f"))
    writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


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


SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


def pkcs11_scenario() -> None:
    """Run in a fresh process (SoftHSM2 reads its configuration once per process):
    receive an item, seal it and a checkpoint through a Sealer on the token, verify both."""
    from archive import db as archive_db
    from archive import sealing
    from archive.cases import create_case
    from archive.db import Database
    from archive.evidence import IncomingEvidence, compute_sm3, receive_original
    from archive.models import EvidenceKind
    from archive.settings import load_settings
    from archive.storage import open_store
    from archive.users import add_user
    from archive.verification import verify_item

    settings = load_settings()
    archive_db.upgrade(settings)
    database, store = Database(settings), open_store(settings)
    sealer = sealing.get_sealer(settings)
    assert sealer.source == "pkcs11"
    with database.session() as s:
        user, _ = add_user(s, name="hsm-officer", unit="u", role="officer")
        case_id, user_id = create_case(s, store=store, user=user, case_number="HSM-1", title="t").id, user.id
    item = receive_original(db=database, store=store, user_id=user_id, retention_days=1, chunks=[b"on the token"],
                            incoming=IncomingEvidence(case_id=case_id, kind=EvidenceKind.other, filename="x.bin"))
    compute_sm3(db=database, store=store, item_id=item.id)
    record = sealing.seal_item(db=database, store=store, sealer=sealer, item_id=item.id)
    with database.session() as s:
        cp = sealing.create_checkpoint(s, sealer, store=store)
    report = verify_item(db=database, store=store, sealer=sealer, item_id=item.id, actor="test")
    assert report.sealed and report.checkpoint_id == cp.id and not report.pending, report
    print(json.dumps({"item": item.id, "cades_sha256": record.cades_sha256, "signer": report.cades.signer_cert_sha256}))


def test_sealing_through_pkcs11_softhsm(tmp_path):
    """SoftHSM2 token made here; the e-seal key lives only on it (imported, non-extractable)."""
    from signing import devpki, keys

    need("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if module is None:
        pytest.skip("libsofthsm2.so not found")
    pki = devpki.create_dev_pki(tmp_path / "pki")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(SOFTHSM2_CONF=str(conf), PYTHONPATH=str(Path(__file__).resolve().parent.parent),
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
    r = run(sys.executable, "-c", "from tests.test_sealing import pkcs11_scenario as s; s()", env=env,
            cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    seal_cert = x509.load_pem_x509_certificate(pki.seal_cert.read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    assert result["signer"] == hashlib.sha256(seal_cert.public_bytes(Encoding.DER)).hexdigest()
    verified = run(sys.executable, "-m", "api.cli", "ledger", "verify", env=env,
                   cwd=Path(__file__).resolve().parent.parent)
    assert verified.returncode == 0 and "checkpoints OK: 1" in verified.stdout, verified.stdout + verified.stderr
