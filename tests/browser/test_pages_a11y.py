"""Each role's main pages in both languages: axe-core (from the npm registry, vendored) finds no
serious or critical accessibility violation, every control is reachable by keyboard and
labelled. The pages do not depend on the stack, so this runs on the embedded default only.

``WORKSPACE_SCREENSHOTS=docs/screenshots`` saves each page as a screenshot there (how the
committed ones are made); a plain test run writes nothing into the checkout."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from tests.browser.conftest import axe_violations, open_as

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(os.environ["WORKSPACE_SCREENSHOTS"]).resolve() if os.environ.get("WORKSPACE_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def scene(stack) -> dict:  # type: ignore[type-arg]
    """A case with an item, a court request and an export waiting for approval."""
    tag = uuid.uuid4().hex[:6]
    tokens = {
        "officer": stack.user(role="officer", unit="unit-a", name=f"officer-{tag}"),
        "reviewer": stack.user(role="reviewer", unit="unit-a", name=f"reviewer-{tag}"),
        "court": stack.user(role="court", unit="court-1", name=f"court-{tag}"),
        "admin": stack.user(role="admin", unit="hq", name=f"admin-{tag}"),
    }
    number = f"文旅执罚〔2026〕{tag}号"
    with stack.client(tokens["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": number, "title": "某演出场所违规经营案"}).json()
        data = b"%PDF-1.4 scene " + tag.encode()
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "询问笔录.pdf",
                                                                        "sha256": hashlib.sha256(data).hexdigest()},
                      content=data).json()
    with stack.client(tokens["court"]) as c:
        c.post("/api/v1/export-requests", json={"case_number": number, "court_reference": "(2026)京0105行初88号",
                                                "legal_basis": "行政诉讼法第四十条"})
    second = stack.user(role="reviewer", unit="unit-a")
    with stack.client(second) as c:
        c.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": f"court-{tag}"})
    return {"tokens": tokens, "case": case, "item": item}


PAGES = [
    ("officer", "/cases", "officer-cases"),
    ("officer", "/cases/{case}", "officer-case"),
    ("reviewer", "/queue", "reviewer-queue"),
    ("reviewer", "/cases/{case}", "reviewer-case"),
    ("court", "/court", "court"),
    ("admin", "/admin", "admin"),
    ("admin", "/cases/{case}", "admin-case"),
    ("reviewer", "/figures", "reviewer-figures"),
    ("admin", "/disposal", "admin-disposal"),
]


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_main_pages_are_accessible_and_keyboard_usable(browser, stack, scene, lang):
    found = {}
    for role, path, shot in PAGES:
        page = open_as(browser, stack, scene["tokens"][role], lang=lang)
        page.goto(path.format(case=scene["case"]["id"]))
        assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
        violations = axe_violations(page)
        if violations:
            found[f"{role} {path}"] = violations
        if SCREENSHOTS is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{shot}-{lang}.png"), full_page=True)
        # Keyboard: Tab reaches the skip link first, and it moves focus to the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.classList.contains('skip')")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        # Every form control has an accessible name (label, aria-label or button text).
        unnamed = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
            .map(e => e.outerHTML.slice(0, 80))""")
        assert unnamed == [], (role, path, unnamed)
        page.context.close()
    assert found == {}
