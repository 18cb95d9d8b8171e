"""Retries are safe and races answer 409, never 500: Idempotency-Key, unique conflicts, upserts.

Every test runs on both stacks (SQLite and PostgreSQL), against the live API where a client
is involved; counts of rows, items and objects are checked, not only status codes.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select, update

from archive import idempotency
from archive.seals.registry import record_certificates, record_sm2_key
from archive.continuity.models import Device
from archive.models import Case, EvidenceItem, IdempotencyKey, TrustedCertificate
from archive.identity.users import authenticate
from tests.tools import CLIENT_TLS, at_once


def _key() -> str:
    return str(uuid.uuid4())


def _count(stack, query) -> int:  # type: ignore[no-untyped-def]
    with stack.services.db.session() as s:
        return s.execute(query).scalar_one()


def _cases_numbered(stack, number: str) -> int:
    return _count(stack, select(func.count()).select_from(Case).where(Case.case_number == number))


def _items_of(stack, case_id: str) -> int:
    return _count(stack, select(func.count()).select_from(EvidenceItem).where(EvidenceItem.case_id == case_id))


def _originals(stack, vault: str) -> int:
    return len(list(stack.services.store.list(f"{vault}/originals/")))


def _user_id(stack, token: str) -> str:
    with stack.services.db.session() as s:
        return authenticate(s, token=token).id


def test_concurrent_creations_of_one_case_number_give_one_201_and_409s(stack, officer):
    number = f"RACE-{uuid.uuid4().hex[:10]}"

    def create(_i: int) -> httpx.Response:
        with stack.client(officer) as c:
            return c.post("/api/v1/cases", json={"case_number": number, "title": "race"})

    replies = at_once(20, create)
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] + [409] * 19, [(r.status_code, r.text) for r in replies]
    assert {r.json()["error"]["code"] for r in replies if r.status_code == 409} == {"case_number_taken"}
    assert _cases_numbered(stack, number) == 1


def test_retried_case_creation_with_the_same_key_gives_the_same_case(stack, officer):
    number, key = f"IDEM-{uuid.uuid4().hex[:10]}", _key()
    body = {"case_number": number, "title": "retried"}
    with stack.client(officer) as c:
        first = c.post("/api/v1/cases", json=body, headers={"Idempotency-Key": f'"{key}"'})
        again = c.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})  # bare form: same key
        listed = [x for x in c.get("/api/v1/cases").json() if x["case_number"] == number]
        other = c.post("/api/v1/cases", json={**body, "title": "something else"}, headers={"Idempotency-Key": key})
        bad = c.post("/api/v1/cases", json={**body, "case_number": number + "-b"}, headers={"Idempotency-Key": "x y"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.content == first.content and again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true" and "idempotent-replayed" not in first.headers
    assert [x["id"] for x in listed] == [first.json()["id"]]
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_idempotency_key"
    assert _cases_numbered(stack, number) == 1 and _cases_numbered(stack, number + "-b") == 0


def test_keys_belong_to_their_user(stack, officer):
    key, other_officer = _key(), stack.user(role="officer", unit="unit-a")
    numbers = [f"PERUSER-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with stack.client(officer) as a, stack.client(other_officer) as b:
        ra = a.post("/api/v1/cases", json={"case_number": numbers[0], "title": "a"}, headers={"Idempotency-Key": key})
        rb = b.post("/api/v1/cases", json={"case_number": numbers[1], "title": "b"}, headers={"Idempotency-Key": key})
    assert ra.status_code == rb.status_code == 201 and ra.json()["id"] != rb.json()["id"]
    assert "idempotent-replayed" not in rb.headers


def test_concurrent_requests_with_one_key_create_one_case(stack, officer):
    number, key = f"SAMEKEY-{uuid.uuid4().hex[:10]}", _key()

    def create(_i: int) -> httpx.Response:
        with stack.client(officer) as c:
            return c.post("/api/v1/cases", json={"case_number": number, "title": "t"}, headers={"Idempotency-Key": key})

    replies = at_once(8, create)
    created = {r.json()["id"] for r in replies if r.status_code == 201}
    assert len(created) == 1, [(r.status_code, r.text) for r in replies]
    assert all(r.status_code == 201 or r.json()["error"]["code"] == "idempotency_key_in_use" for r in replies)
    assert _cases_numbered(stack, number) == 1


def test_key_in_flight_is_409_until_its_lease_runs_out(stack, officer):
    from api.schemas import CaseCreate

    number, key = f"INFLIGHT-{uuid.uuid4().hex[:10]}", _key()
    body = {"case_number": number, "title": "t"}
    user_id = _user_id(stack, officer)
    # A first request that claimed the key and is still running (or whose process died).
    fingerprint = idempotency.fingerprint("POST", "/api/v1/cases", CaseCreate(**body).model_dump(mode="json"))
    idempotency.claim(stack.services.db, user_id=user_id, key=key, fingerprint=fingerprint)
    with stack.client(officer) as c:
        busy = c.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_key_in_use"
        assert _cases_numbered(stack, number) == 0
        with stack.services.db.session() as s:  # the claim's lease runs out: its request died
            s.execute(update(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                      .values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
        taken = c.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
        again = c.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
    assert taken.status_code == 201 and again.status_code == 201 and again.json()["id"] == taken.json()["id"]
    assert _cases_numbered(stack, number) == 1


def test_retried_upload_with_the_same_key_gives_the_same_item(stack, officer, case):
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    url = f"/api/v1/cases/{case['id']}/evidence"
    declared = {"kind": "other", "filename": "a.bin", "sha256": digest}
    undeclared = {"kind": "other", "filename": "b.bin"}
    k1, k2 = _key(), _key()
    with stack.client(officer) as c:
        first = c.post(url, params=declared, content=data, headers={"Idempotency-Key": k1})
        again = c.post(url, params=declared, content=data, headers={"Idempotency-Key": k1})
        assert first.status_code == again.status_code == 201, (first.text, again.text)
        assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
        # No declared hash: the retry's body is hashed (not stored) and compared with the first.
        # Other bytes: the same content again would be the same evidence (answered 200, not kept).
        data2 = os.urandom(len(data))
        second = c.post(url, params=undeclared, content=data2, headers={"Idempotency-Key": k2})
        replay = c.post(url, params=undeclared, content=data2, headers={"Idempotency-Key": k2})
        other_bytes = c.post(url, params=undeclared, content=os.urandom(len(data)), headers={"Idempotency-Key": k2})
        other_params = c.post(url, params={**declared, "filename": "c.bin"}, content=data, headers={"Idempotency-Key": k1})
        listed = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
    assert second.status_code == replay.status_code == 201 and replay.json()["id"] == second.json()["id"]
    assert other_bytes.status_code == 422 and other_bytes.json()["error"]["code"] == "idempotency_key_reused"
    assert other_params.status_code == 422 and other_params.json()["error"]["code"] == "idempotency_key_reused"
    assert sorted(i["id"] for i in listed) == sorted([first.json()["id"], second.json()["id"]])
    assert _items_of(stack, case["id"]) == 2 and _originals(stack, case["vault"]) == 2


def test_failed_upload_frees_its_key(stack, officer, case):
    url, key = f"/api/v1/cases/{case['id']}/evidence", _key()
    params = {"kind": "other", "filename": "x.bin", "sha256": "0" * 64}
    with stack.client(officer) as c:
        first = c.post(url, params=params, content=b"not these bytes", headers={"Idempotency-Key": key})
        # Nothing was kept, so the retry runs again (not a replay of the error, not "in use").
        again = c.post(url, params=params, content=b"not these bytes", headers={"Idempotency-Key": key})
    assert first.json()["error"]["code"] == again.json()["error"]["code"] == "hash_mismatch"
    assert _items_of(stack, case["id"]) == 0 and _originals(stack, case["vault"]) == 0


def test_retried_tus_creation_resumes_the_first_upload(stack, officer, case):
    import base64

    def meta(**kv: str) -> str:
        return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())

    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Idempotency-Key": _key(),
               "Upload-Metadata": meta(case_id=case["id"], kind="other", filename="t.bin")}
    with stack.client(officer) as c:
        first = c.post("/api/v1/uploads", headers=headers)
        again = c.post("/api/v1/uploads", headers=headers)
        changed = c.post("/api/v1/uploads", headers={**headers, "Upload-Length": "11"})
    assert first.status_code == again.status_code == 201
    assert again.headers["location"] == first.headers["location"] and again.headers["idempotent-replayed"] == "true"
    assert again.headers["tus-resumable"] == "1.0.0" and again.headers["upload-offset"] == "0"
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_clock_settings_of_a_new_device_all_succeed(stack, officer):
    device = f"CAM-{uuid.uuid4().hex[:8]}"

    def put(i: int) -> httpx.Response:
        with stack.client(officer) as c:
            return c.put(f"/api/v1/devices/{device}", json={"clock_offset_seconds": float(i)})

    replies = at_once(8, put)
    assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies]
    assert _count(stack, select(func.count()).select_from(Device).where(Device.id == device)) == 1


def _fresh_certificates(n: int):  # type: ignore[no-untyped-def]
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    certs = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"race-{uuid.uuid4().hex[:8]}-{i}")])
        now = datetime.now(timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
        certs.append(("seal", asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))))
    return certs


def test_concurrent_sealing_records_each_certificate_once(stack):
    from signing import sm2 as signing_sm2
    from signing.certs import sha256_fingerprint

    certs = _fresh_certificates(3)
    sm2_key = signing_sm2.generate_sm2_private_key().public_key
    db = stack.services.db

    def record(_i: int) -> int:
        with db.session() as session:  # a worker's sealing transaction, held open a moment
            added = record_certificates(session, certs)
            record_sm2_key(session, sm2_key)
            time.sleep(0.3)
        return added

    results = at_once(6, record)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(results) == len(certs)  # each certificate added by exactly one of them
    fingerprints = [sha256_fingerprint(c) for _role, c in certs] + [sm2_key.fingerprint()]
    assert _count(stack, select(func.count()).select_from(TrustedCertificate)
                  .where(TrustedCertificate.fingerprint.in_(fingerprints))) == len(fingerprints)


def test_purge_forgets_only_expired_keys(stack, officer):
    user_id, db = _user_id(stack, officer), stack.services.db
    old, new = _key(), _key()
    past = datetime.now(timezone.utc) - idempotency.KEY_TTL - timedelta(hours=1)
    idempotency.claim(db, user_id=user_id, key=old, fingerprint="f", now=past)
    idempotency.claim(db, user_id=user_id, key=new, fingerprint="f")
    with db.session() as s:
        assert idempotency.purge_expired(s) >= 1
        left = set(s.execute(select(IdempotencyKey.key).where(IdempotencyKey.key.in_([old, new]))).scalars())
    assert left == {new}


@pytest.mark.slow  # starts an API server of its own
def test_committed_upload_answers_201_when_the_broker_is_down(stack, officer, case, caplog):
    from tests.conftest import ApiServer

    # The same database and store, but a broker nothing listens on: sending the task fails
    # after the item is committed, and the reply must still be the success.
    api = ApiServer(stack.settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"}))
    try:
        with httpx.Client(verify=CLIENT_TLS, base_url=api.url, headers={"Authorization": f"Bearer {officer}"}, timeout=60) as c:
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "q.bin"},
                       content=b"queued later", headers={"Idempotency-Key": _key()})
    finally:
        api.stop()
        api.app.state.services.db.dispose()
    assert r.status_code == 201, r.text
    assert _items_of(stack, case["id"]) == 1 and r.json()["id"]
    assert any("could not send evidence.process_item" in rec.getMessage() for rec in caplog.records)


def test_concurrent_user_additions_share_a_new_unit_and_conflict_on_a_name(stack):
    from archive.errors import Conflict
    from archive.models import Unit, User
    from archive.identity.users import add_user

    unit, name = f"unit-{uuid.uuid4().hex[:8]}", f"same-{uuid.uuid4().hex[:8]}"
    db = stack.services.db

    def add(i: int, *, same_name: bool = False) -> str:
        with db.session() as session:
            user, _token = add_user(session, name=name if same_name else f"{name}-{i}", unit=unit, role="officer")
            return user.id

    distinct = at_once(6, add)
    assert not [r for r in distinct if isinstance(r, BaseException)], distinct
    assert _count(stack, select(func.count()).select_from(Unit).where(Unit.name == unit)) == 1
    same = at_once(6, lambda i: add(i, same_name=True))
    errors = [r for r in same if isinstance(r, BaseException)]
    assert len(errors) == 5 and all(isinstance(e, Conflict) and e.code == "user_exists" for e in errors), same
    assert _count(stack, select(func.count()).select_from(User).where(User.name == name)) == 1
