import hashlib
import threading

import pytest
from asn1crypto import algos, tsp

from signing import tsa
from signing.cades import seal_detached, verify_detached
from signing.errors import TimestampFailed


def _request(digest: bytes, *, algo="sha256", nonce=12345, policy=None) -> bytes:
    fields = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": algos.DigestAlgorithm({"algorithm": algo}), "hashed_message": digest},
        "nonce": nonce,
        "cert_req": True,
    }
    if policy:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields).dump()


def _status(resp: bytes):
    return tsa.TimeStampResp.load(resp)["status"].native


def test_openssl_verifies_response(tmp_path, pki, authority, need, sh):
    need("openssl")
    data = tmp_path / "data"
    data.write_bytes(b"evidence bytes\n" * 100)
    query = tmp_path / "req.tsq"
    res = sh(["openssl", "ts", "-query", "-data", data, "-sha256", "-cert", "-out", query])
    assert res.returncode == 0, res.stderr
    reply = tmp_path / "resp.tsr"
    reply.write_bytes(authority.respond(query.read_bytes()))
    res = sh(["openssl", "ts", "-verify", "-in", reply, "-queryfile", query,
              "-CAfile", pki.root_cert, "-untrusted", pki.tsa_cert])
    assert res.returncode == 0 and "Verification: OK" in res.stdout, res.stderr
    # The same reply must be rejected against an unrelated data file.
    other = tmp_path / "other"
    other.write_bytes(b"something else")
    res = sh(["openssl", "ts", "-verify", "-in", reply, "-data", other,
              "-CAfile", pki.root_cert, "-untrusted", pki.tsa_cert])
    assert res.returncode != 0


def test_granted_token_contents(authority):
    digest = hashlib.sha256(b"x").digest()
    resp = tsa.TimeStampResp.load(authority.respond(_request(digest, nonce=987654321)))
    assert resp["status"]["status"].native == "granted"
    signed_data = resp["time_stamp_token"]["content"]
    info = signed_data["encap_content_info"]["content"].parsed
    assert info["nonce"].native == 987654321
    assert info["message_imprint"]["hashed_message"].native == digest
    attrs = {a["type"].native for a in signed_data["signer_infos"][0]["signed_attrs"]}
    assert "signing_certificate_v2" in attrs


def test_serial_numbers_are_unique(authority):
    digest = hashlib.sha256(b"x").digest()
    serials = set()
    for _ in range(50):
        resp = tsa.TimeStampResp.load(authority.respond(_request(digest)))
        serials.add(resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed["serial_number"].native)
    assert len(serials) == 50


@pytest.mark.parametrize(
    "request_der, fail_info",
    [
        (b"", "bad_data_format"),
        (b"\x30\x03\x02\x01\x01", "bad_data_format"),
        (b"not DER at all", "bad_data_format"),
        (_request(hashlib.sha1(b"x").digest(), algo="sha1"), "bad_alg"),
        (_request(b"\x00" * 31), "bad_data_format"),
        (_request(hashlib.sha256(b"x").digest(), policy="1.2.3.4"), "unaccepted_policy"),
    ],
)
def test_bad_requests_get_rejections_not_exceptions(authority, request_der, fail_info):
    status = _status(authority.respond(request_der))
    assert status["status"] == "rejection"
    assert status["fail_info"] == {fail_info}


def test_http_endpoint_with_pyhanko_client(authority, signer, roots, manifest):
    server = tsa.make_http_server(authority)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        stamper = tsa.http_timestamper(f"http://{host}:{port}/tsa", timeout=5)
        seal = seal_detached(data=manifest, signer=signer, timestamper=stamper)
        assert verify_detached(data=manifest, seal=seal, trust_roots=roots).tsa_subject.startswith("CN=")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_unreachable_tsa_is_timestamp_failed(signer, manifest):
    stamper = tsa.http_timestamper("http://127.0.0.1:9/tsa", timeout=2)
    with pytest.raises(TimestampFailed):
        seal_detached(data=manifest, signer=signer, timestamper=stamper)


def test_refusing_tsa_is_timestamp_failed(signer, manifest, authority):
    class Refusing(tsa.TimeStampAuthority):
        def respond(self, request_der):
            return self._rejection("system_failure", "down for maintenance")

    refusing = Refusing(cert=authority.certificate, key=authority._key)
    with pytest.raises(TimestampFailed, match="maintenance"):
        seal_detached(data=manifest, signer=signer, timestamper=tsa.local_timestamper(refusing))
