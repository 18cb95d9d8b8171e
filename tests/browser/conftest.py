"""Browser tests: Playwright (PyPI) driving Debian's Chromium (/usr/bin/chromium, installed by
scripts/setup.sh; Playwright never downloads a browser here) against the real service: a stack
of its own per module (API in uvicorn, a Celery worker, the embedded default or the services).

Controls are found by their ``data-testid`` (the names issue 16 fixes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, own_stack

CHROMIUM = Path(os.environ.get("EVIDENCE_TEST_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
"""Flags that let Chromium run headless as root in a container without phoning home."""


@pytest.fixture(scope="module", params=["embedded", "services"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    """The service, on a stack of this module's own (its work never delays other tests)."""
    with own_stack(request, tmp_path_factory, "browser") as s:
        yield s


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """One headless Chromium per module (Playwright's own event loop ends with it, so no
    later test module ever runs beside it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def open_as(browser, stack: Stack, token: str, *, lang: str = "zh",  # type: ignore[no-untyped-def]
            timezone_id: str | None = None):
    """A fresh browser context signed in with ``token`` through the sign-in page (the
    browser's own zone ``timezone_id`` if given); its page."""
    context = browser.new_context(base_url=stack.url, locale="zh-CN" if lang == "zh" else "en-US",
                                  accept_downloads=True, timezone_id=timezone_id)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"/login?lang={lang}")
    page.get_by_test_id("signin-token").fill(token)
    page.get_by_test_id("signin-submit").click()
    page.wait_for_load_state()
    return page


def axe_violations(page, *, impacts=("serious", "critical")) -> list[dict]:  # type: ignore[no-untyped-def]
    """Run axe-core (vendored from the npm registry) in the page; its serious/critical findings."""
    page.add_script_tag(path=str(Path(__file__).resolve().parents[2] / "api/static/vendor/axe.min.js"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in impacts
    ]
