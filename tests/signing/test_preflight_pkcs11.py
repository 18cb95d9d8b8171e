"""Production start-up checks with the e-seal key on a PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

from archive import preflight
from archive.settings import Settings
from tests.servers import free_port


def _settings(pki, softhsm, *, pin: str, key_label: str = "seal") -> Settings:
    # Servers nobody answers: their checks fail fast and are not what is looked at here.
    return Settings(
        mode="production", database_url="postgresql://x@127.0.0.1:1/x", storage_backend="s3",
        s3_endpoint=f"127.0.0.1:{free_port()}", s3_access_key="a", s3_secret_key="b", s3_secure=False,
        broker_url="redis://127.0.0.1:1/0", pkcs11_module=softhsm["module"], pkcs11_token_label=softhsm["token"],
        pkcs11_pin=pin, pkcs11_key_label=key_label, trust_roots=pki.root_cert, sm2_key=pki.sm2_key,
        tsa_url=f"http://127.0.0.1:{free_port()}/tsa", export_link_secret="k" * 40, preflight_timeout_seconds=2,
    )


def _seal_problems(report: preflight.PreflightReport) -> list[str]:
    return [p for p in report.problems if "e-seal" in p]


def test_token_key_that_opens_and_chains_passes(pki, softhsm):
    report = preflight.run(_settings(pki, softhsm, pin=softhsm["pin"]))
    assert _seal_problems(report) == [] and "e-seal key, certificate and chain" in report.passed


def test_wrong_pin_is_refused(pki, softhsm):
    (problem,) = _seal_problems(preflight.run(_settings(pki, softhsm, pin="0000")))
    assert "e-seal key unusable (EVIDENCE_PKCS11_*" in problem and "cannot open PKCS#11 token" in problem


def test_missing_key_label_is_refused(pki, softhsm):
    (problem,) = _seal_problems(preflight.run(_settings(pki, softhsm, pin=softhsm["pin"], key_label="nope")))
    assert "'nope'" in problem
