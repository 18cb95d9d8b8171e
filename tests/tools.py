"""Standard tools the tests check our output with."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import unavailable


def pdfsig_trusting(pdf: Path, root_pem: Path) -> str:
    """poppler's ``pdfsig`` report on ``pdf`` with ``root_pem`` as its only trusted root.

    pdfsig trusts what an NSS database trusts; a throwaway one holding just our root
    makes its "Certificate is Trusted" verdict mean something.
    """
    for tool in ("pdfsig", "certutil"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} not installed (apt-get install poppler-utils libnss3-tools)")
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
