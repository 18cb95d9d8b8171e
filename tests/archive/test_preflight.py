"""Production start-up checks: bad key material, secrets, TSA or bucket refuse the start,
naming every problem in one message; good material passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from archive import preflight
from archive.errors import ConfigurationError
from archive.settings import Settings
from signing import devpki, tsa
from tests.conftest import ROOT
from tests.servers import S3Server, free_port

GOOD_SECRET = "s" * 48


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> devpki.DevPKI:
    return devpki.create_dev_pki(tmp_path_factory.mktemp("pki"), organisation="Preflight Test")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> devpki.DevPKI:
    return devpki.create_dev_pki(tmp_path_factory.mktemp("other-pki"), organisation="Someone Else")


@pytest.fixture(scope="module")
def tsa_url(pki) -> Iterator[str]:
    """An RFC 3161 TSA over HTTP, certified by ``pki``'s root."""
    server = tsa.make_http_server(tsa.TimeStampAuthority.from_files(cert_path=pki.tsa_cert, key_path=pki.tsa_key))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    server.shutdown()
    server.server_close()


def production_env(pki: devpki.DevPKI, tsa_url: str, s3: S3Server, tmp: Path, **changes: str) -> dict[str, str]:
    """EVIDENCE_* variables of a production configuration with good material, then ``changes``."""
    env = {
        "EVIDENCE_MODE": "production",
        "EVIDENCE_DATA_DIR": str(tmp / "data"),
        "EVIDENCE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "EVIDENCE_STORAGE_BACKEND": "s3",
        "EVIDENCE_S3_ENDPOINT": s3.endpoint,
        "EVIDENCE_S3_ACCESS_KEY": s3.access_key,
        "EVIDENCE_S3_SECRET_KEY": s3.secret_key,
        "EVIDENCE_S3_SECURE": "false",
        "EVIDENCE_S3_BUCKET": f"preflight-{uuid.uuid4().hex[:8]}",
        "EVIDENCE_BROKER_URL": "redis://127.0.0.1:6379/0",
        "EVIDENCE_SEAL_KEY": str(pki.seal_key),
        "EVIDENCE_SEAL_CERT": str(pki.seal_cert),
        "EVIDENCE_TRUST_ROOTS": str(pki.root_cert),
        "EVIDENCE_SM2_KEY": str(pki.sm2_key),
        "EVIDENCE_TSA_URL": tsa_url,
        "EVIDENCE_EXPORT_LINK_SECRET": GOOD_SECRET,
        "EVIDENCE_PREFLIGHT_TIMEOUT_SECONDS": "3",
    }
    env.update(changes)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{k[len("EVIDENCE_"):].lower(): v for k, v in env.items()})


@pytest.fixture
def good(pki, tsa_url, s3_server, tmp_path):
    """``good(**changes)``: production settings with good material, then ``changes``."""
    return lambda **changes: settings_of(production_env(pki, tsa_url, s3_server, tmp_path, **changes))


def refused(settings: Settings) -> str:
    with pytest.raises(ConfigurationError) as caught:
        preflight.check(settings)
    return caught.value.message


def test_good_material_passes(good):
    report = preflight.check(good())
    assert report.ok and len(report.passed) == len(preflight.CHECKS)


def test_development_mode_checks_nothing(tmp_path):
    assert preflight.check(Settings(data_dir=tmp_path)).passed == ()


def test_empty_seal_key_is_refused(good, tmp_path):
    empty = tmp_path / "seal-key.pem"
    empty.write_bytes(b"")
    message = refused(good(EVIDENCE_SEAL_KEY=str(empty)))
    assert "e-seal key unusable" in message and str(empty) in message


def test_seal_key_not_matching_its_certificate_is_refused(good, pki):
    message = refused(good(EVIDENCE_SEAL_KEY=str(pki.tsa_key)))
    assert "does not belong to certificate" in message


def test_seal_chain_not_reaching_the_roots_is_refused(good, other_pki):
    # The other PKI's root is trusted; ours is not, so neither the seal nor the TSA chains.
    message = refused(good(EVIDENCE_TRUST_ROOTS=str(other_pki.root_cert)))
    assert "e-seal certificate" in message and "does not chain to EVIDENCE_TRUST_ROOTS" in message
    assert "EVIDENCE_TSA_URL" in message and "would not verify" in message


def test_empty_sm2_key_is_refused(good, tmp_path):
    empty = tmp_path / "sm2.pem"
    empty.write_bytes(b"")
    assert "EVIDENCE_SM2_KEY" in refused(good(EVIDENCE_SM2_KEY=str(empty)))


def test_short_link_secret_is_refused(good):
    message = refused(good(EVIDENCE_EXPORT_LINK_SECRET="x"))
    assert "EVIDENCE_EXPORT_LINK_SECRET is shorter than 32 bytes" in message


def test_tsa_nobody_answers_is_refused(good):
    started = time.monotonic()
    message = refused(good(EVIDENCE_TSA_URL=f"http://127.0.0.1:{free_port()}/tsa"))
    assert "did not answer a test time-stamp" in message
    assert time.monotonic() - started < 30


def test_builtin_tsa_key_not_matching_is_refused(good, pki):
    message = refused(good(EVIDENCE_SERVE_TSA="true", EVIDENCE_TSA_CERT=str(pki.tsa_cert),
                           EVIDENCE_TSA_KEY=str(pki.seal_key)))
    assert "EVIDENCE_TSA_KEY" in message


def test_bucket_without_object_lock_is_refused(good, s3_server):
    from minio import Minio

    bucket = f"nolock-{uuid.uuid4().hex[:8]}"
    Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False).make_bucket(bucket)
    message = refused(good(EVIDENCE_S3_BUCKET=bucket))
    assert "object lock" in message and bucket in message


def test_unreachable_s3_is_refused(good):
    message = refused(good(EVIDENCE_S3_ENDPOINT=f"127.0.0.1:{free_port()}"))
    assert "S3 store" in message and "unreachable" in message


def test_every_problem_in_one_message(good, tmp_path, pki):
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    message = refused(good(EVIDENCE_SEAL_KEY=str(empty), EVIDENCE_EXPORT_LINK_SECRET="x",
                           EVIDENCE_TSA_URL=f"http://127.0.0.1:{free_port()}/tsa",
                           EVIDENCE_S3_ENDPOINT=f"127.0.0.1:{free_port()}"))
    assert message.startswith("production start-up refused, 4 problem(s)")
    for name in ("EVIDENCE_SEAL_KEY", "EVIDENCE_EXPORT_LINK_SECRET", "EVIDENCE_TSA_URL", "S3 store"):
        assert name in message


def _entry_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EVIDENCE_", "PROMETHEUS_"))}
    return {**base, **env, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow  # starts evidence serve as a process
def test_serve_refuses_bad_material(pki, tsa_url, s3_server, tmp_path):
    """The real entry point: ``evidence serve`` exits 2 with one message listing both problems."""
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    env = production_env(pki, tsa_url, s3_server, tmp_path, EVIDENCE_SEAL_KEY=str(empty),
                         EVIDENCE_EXPORT_LINK_SECRET="x")
    r = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--port", str(free_port()), "--no-workers"],
                       env=_entry_env(env), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "production start-up refused, 2 problem(s)" in r.stderr
    assert "EVIDENCE_SEAL_KEY" in r.stderr and "EVIDENCE_EXPORT_LINK_SECRET" in r.stderr


@pytest.mark.slow  # starts a Celery process
@pytest.mark.parametrize("role", ["worker", "beat"])
def test_celery_refuses_bad_material(pki, s3_server, tmp_path, role):
    """The worker and beat entry points refuse too, naming the problem."""
    env = production_env(pki, f"http://127.0.0.1:{free_port()}/tsa", s3_server, tmp_path)
    args = ["--pool", "solo"] if role == "worker" else ["--schedule", str(tmp_path / "schedule")]
    r = subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", role, *args],
                       env=_entry_env(env), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "production start-up refused" in r.stderr and "EVIDENCE_TSA_URL" in r.stderr, r.stderr


@pytest.mark.slow  # starts evidence serve with its workers
def test_serve_starts_with_good_material(pki, tsa_url, s3_server, own_pg_url, tmp_path):
    """With good material production ``evidence serve`` starts and answers /healthz."""
    from archive import db

    env = production_env(pki, tsa_url, s3_server, tmp_path, EVIDENCE_DATABASE_URL=own_pg_url)
    db.upgrade(settings_of(env))
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-workers"],
                            env=_entry_env(env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
