"""Fixtures for the signing tests: a real dev PKI, TSA, signer, PDF and SoftHSM2 token."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from signing import devpki, keys, tsa
from signing.certs import load_certificates
from tests import bigpdf
from tests.tools import need as need_tool
from tests.tools import softhsm_module

def run(args: list, **kwargs) -> subprocess.CompletedProcess:
    """Run a CLI with text output captured; never raises on a non-zero exit."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> devpki.DevPKI:
    return devpki.create_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def roots(pki):
    return load_certificates(pki.root_cert)


@pytest.fixture(scope="session")
def authority(pki) -> tsa.TimeStampAuthority:
    return tsa.TimeStampAuthority.from_files(cert_path=pki.tsa_cert, key_path=pki.tsa_key)


@pytest.fixture(scope="session")
def timestamper(authority):
    return tsa.local_timestamper(authority)


@pytest.fixture(scope="session")
def signer(pki):
    return keys.signer_from_files(key_path=pki.seal_key, cert_path=pki.seal_cert, chain_paths=[pki.root_cert])


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory) -> devpki.DevPKI:
    """A second, unrelated PKI: its root must not be trusted for the first."""
    return devpki.create_dev_pki(tmp_path_factory.mktemp("other-pki"), organisation="Someone Else")


@pytest.fixture
def manifest() -> bytes:
    return b"sha256  0123abcd  evidence/clip-0001.mp4\nsha256  4567ef01  evidence/record.pdf\n"


@pytest.fixture(scope="session")
def blank_pdf() -> bytes:
    """A one-page PDF drawn with pyHanko's writer (no extra dependencies)."""
    return bigpdf.blank_pdf()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory, pki):
    """A SoftHSM2 token 'test' (user PIN 1234) holding the e-seal key and certificate as 'seal'."""
    module = softhsm_module()
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    old = os.environ.get("SOFTHSM2_CONF")
    # SoftHSM2 reads its configuration when the module is first initialised
    # in this process, so the variable must be set before any PKCS#11 use.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    init = run(["softhsm2-util", "--init-token", "--free", "--label", "test", "--pin", "1234", "--so-pin", "5678"])
    assert init.returncode == 0, init.stderr
    keys.import_key_to_token(
        module_path=module, token_label="test", pin="1234",
        key_path=pki.seal_key, cert_path=pki.seal_cert, label="seal",
    )
    yield {"module": module, "token": "test", "pin": "1234", "label": "seal"}
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture(scope="session")
def need():
    """``need("openssl")``: the tool's path, or skip (fail under CI=true)."""
    return need_tool


@pytest.fixture(scope="session")
def sh():
    """``sh([...])``: run a CLI, capture text output, never raise on exit status."""
    return run
