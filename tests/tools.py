"""Standard tools the tests check our output with, and what a test does when one is missing.

A test whose tool, library or service is missing is skipped on a developer's machine;
under ``CI=true`` it fails the run instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CLIENT_TLS = ssl.create_default_context()
"""One TLS context for every test client (``httpx.Client(verify=CLIENT_TLS)``): httpx otherwise
loads the CA bundle for each new client, some 50 ms of CPU, even for the plain-HTTP API the
tests talk to."""

IN_CI = os.environ.get("CI", "").lower() == "true"
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


def unavailable(reason: str) -> None:
    """Skip the test for something missing — or fail it when running in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: what a test needs must be installed)", pytrace=False)
    pytest.skip(reason)


def need(tool: str) -> str:
    """Path of a command-line tool, on PATH or beside this Python (the venv's own, e.g.
    ``pyhanko``); unavailable when it is neither."""
    beside = Path(sys.executable).parent / tool
    path = shutil.which(tool) or (str(beside) if beside.exists() else None)
    if path is None:
        unavailable(f"{tool} is not installed")
    return str(path)


def softhsm_module() -> str:
    """The SoftHSM2 PKCS#11 library (and its ``softhsm2-util``); unavailable without them."""
    need("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if module is None:
        unavailable("libsofthsm2.so not found")
    return str(module)


def pdfsig_trusting(pdf: Path, root_pem: Path) -> str:
    """poppler's ``pdfsig`` report on ``pdf`` with ``root_pem`` as its only trusted root.

    pdfsig trusts what an NSS database trusts; a throwaway one holding just our root
    makes its "Certificate is Trusted" verdict mean something.
    """
    need("pdfsig"), need("certutil")  # apt-get install poppler-utils libnss3-tools
    with tempfile.TemporaryDirectory() as nss:
        db = f"sql:{nss}"
        subprocess.run(["certutil", "-N", "-d", db, "--empty-password"], check=True, capture_output=True)
        subprocess.run(["certutil", "-A", "-d", db, "-n", "evidence-root", "-t", "CT,C,C", "-i", str(root_pem)],
                       check=True, capture_output=True)
        r = subprocess.run(["pdfsig", "-nssdir", db, str(pdf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def csrf_of(page_html: str) -> str:
    """The CSRF token in a page's forms."""
    import re

    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page_html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(browser, token: str):  # type: ignore[no-untyped-def]
    """Sign a browser (an httpx.Client) in with an API token through the sign-in form."""
    csrf = csrf_of(browser.get("/login").text)
    return browser.post("/login", data={"token": token, "csrf_token": csrf})


def at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` in ``n`` threads released together (a barrier); their results, or the
    exceptions they raised, in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def received_cut_short(client: Any, url: str) -> bytes:
    """What a GET of ``url`` delivered before the server ended the response short of its
    length (answered 200, then the connection broke: how a checked download refuses to hand
    over altered bytes whole). Fails if the response arrived whole."""
    import httpx

    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", url) as r:
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                received += chunk
    return bytes(received)
