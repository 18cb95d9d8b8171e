"""The workspace's message catalogue: every id a template or a page module uses exists in
Chinese and English, with the same placeholders; the language is chosen and remembered."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import httpx
import pytest

from api.language import preferred_language
from archive.i18n.messages import MESSAGES
from tests.tools import CLIENT_TLS

ROOT = Path(__file__).resolve().parents[2]
USES = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""")
NOTICES = re.compile(r"""notice=["']([a-z_]+)["']""")
MESSAGE_CALLS = re.compile(r"""message\(request,\s*["']([a-z_]+\.[a-z_.]+)["']""")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_used_exists_in_both_languages_with_the_same_placeholders():
    used: set[str] = set()
    for template in (ROOT / "api/templates").glob("*.html"):
        used |= set(USES.findall(template.read_text()))
    for module in (ROOT / "api/pages").glob("*.py"):
        text = module.read_text()
        used |= {f"notice.{n}" for n in NOTICES.findall(text)} | set(MESSAGE_CALLS.findall(text))
    assert used, "the pattern found no message ids"
    missing = sorted(used - set(MESSAGES))
    assert missing == []
    for key, texts in MESSAGES.items():
        assert set(texts) == {"zh", "en"}, key
        assert texts["zh"].strip() and texts["en"].strip(), key
        assert _fields(texts["zh"]) == _fields(texts["en"]), key


def _literal_arguments(function: str, *, keyword: str | None = None, position: int | None = None) -> set[str]:
    """String literals the server's code passes to ``function`` (by ``keyword`` or at
    ``position``), and the values of module constants passed there by name."""
    found: set[str] = set()
    for package in ("archive", "ingest", "workers", "api"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                         for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
                         and isinstance(n.value.value, str)}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name != function:
                    continue
                args = [k.value for k in node.keywords if k.arg == keyword] if keyword else []
                if position is not None and len(node.args) > position:
                    args.append(node.args[position])
                for arg in args:
                    formatted = {id(n) for j in ast.walk(arg) if isinstance(j, ast.JoinedStr) for n in ast.walk(j)}
                    for leaf in ast.walk(arg):  # also both sides of `"a" if x else "b"`; not f-string parts
                        if id(leaf) in formatted:
                            continue
                        if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                            found.add(leaf.value)
                        elif isinstance(leaf, ast.Name) and leaf.id in constants:
                            found.add(constants[leaf.id])
    return found


def test_every_stored_value_a_page_shows_has_a_label_in_both_languages():
    """Custody actions, processing steps, flags, seal objects and verification rows are shown
    through the catalogue (``group.value``); a value without an entry would show raw in the
    Chinese pages. The values are read from the code that records them."""
    from archive.cases.receipts import ARCHIVE_COPIES, CHECKPOINT_COPIES
    from archive.evidence.fixity import FIXITY_FAILED, MISSING_OBJECT
    from archive.inspections.models import InspectionStatus
    from archive.seals.items import SEAL_ROLES
    from ingest.pipeline import STEPS

    actions = _literal_arguments("append", keyword="action") | _literal_arguments("append_now", keyword="action")
    actions |= {"user_enabled", "user_disabled", "user_changed"} | {f"inspection_{s.value}" for s in InspectionStatus}
    assert {"evidence_received", "item_sealed", "case_stage_moved", "checkpoint_sealed"} <= actions
    flags = _literal_arguments("add_flag", position=1) | {"empty_file", FIXITY_FAILED, MISSING_OBJECT}
    assert {"processing_failed", "duplicate_content"} <= flags
    steps = set(STEPS) | _literal_arguments("set_task_state", position=1) | _literal_arguments("step", position=1)
    assert {"probe", "sm3", "seal"} <= steps
    wanted = ({f"action.{a}" for a in actions} | {f"flag.{f}" for f in flags} | {f"step.{s}" for s in steps}
              | {f"derived.{r}" for r in (*SEAL_ROLES, "pades", "thumbnail", "proxy")}
              | {f"check.{w}" for w in ("item", "ledger", "checkpoints", "continuity", "run", "gap",
                                           CHECKPOINT_COPIES, ARCHIVE_COPIES)}
              | {f"check_outcome.{o}" for o in ("ok", "failed", "pending")})
    assert sorted(wanted - set(MESSAGES)) == []


def test_chinese_by_default_english_when_asked_and_remembered(stack):
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60) as b:
        page = b.get("/login")
        assert '<html lang="zh-CN">' in page.text and "登录" in page.text
        english = b.get("/login?lang=en")
        assert '<html lang="en">' in english.text and "Sign in" in english.text
        assert b.cookies.get("evidence_lang") == "en"
        assert '<html lang="en">' in b.get("/login").text  # remembered
        assert '<html lang="zh-CN">' in b.get("/login?lang=zh").text
        assert '<html lang="zh-CN">' in b.get("/login?lang=xx").text  # unknown: the cookie's (zh now)


@pytest.mark.parametrize(("header", "chosen"), [
    ("zh", "zh"), ("zh-CN", "zh"), ("zh-Hans", "zh"), ("zh-TW,zh;q=0.9", "zh"), ("en-US", "en"),
    ("en;q=0.8", "en"), ("EN-gb", "en"), ("en-US,en;q=0.9,zh;q=0.8", "en"), ("zh;q=0.5, en;q=0.6", "en"),
    ("en, zh", "en"), ("zh, en", "zh"), ("*", "zh"), ("fr, *;q=0.1", "zh"), ("zh;q=0, *", "en"),
    (" , en ,", "en"),
    # Nothing we offer, or not Accept-Language at all: the default.
    ("fr", None), ("en;q=0", None), ("", None), ("en;q=2", None), ("en;q=1.0001", None), ("en;q=0.5;x=1", None),
    ("garbage;;", None), ("e n", None), ("en_US", None), ("a" * 9, None), ("en," * 60, None), ("en;q=", None),
])
def test_accept_language_is_read_strictly(header, chosen):
    assert preferred_language(header, ("zh", "en")) == chosen


def test_the_browser_language_comes_after_the_address_and_the_cookie(stack):
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60) as b:
        english = b.get("/login", headers={"Accept-Language": "en-US,en;q=0.9,zh-CN;q=0.5"})
        assert '<html lang="en">' in english.text and "Sign in" in english.text
        assert "accept-language" in english.headers["vary"].lower()
        assert "evidence_lang" not in b.cookies  # not remembered: the browser says it each time
        for header in ("zh-Hans", "fr", "en;q=0", "en;q=abc", "*"):
            page = b.get("/login", headers={"Accept-Language": header})
            assert '<html lang="zh-CN">' in page.text, header
            assert "accept-language" in page.headers["vary"].lower()
        assert '<html lang="zh-CN">' in b.get("/login").text
        chosen = b.get("/login?lang=zh", headers={"Accept-Language": "en"})
        assert '<html lang="zh-CN">' in chosen.text and "accept-language" not in chosen.headers.get("vary", "").lower()
        remembered = b.get("/login", headers={"Accept-Language": "en"})  # the cookie (zh) decides
        assert '<html lang="zh-CN">' in remembered.text
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60) as b:
        missing = b.get("/cases/no-such-case", headers={"Accept-Language": "en"}, follow_redirects=True)
        assert '<html lang="en">' in missing.text  # the sign-in page it was sent to


def test_switching_language_keeps_what_the_address_chose(stack):
    """The other language's link was ``?lang=en`` alone: from my cases (``?mine=true``), a
    custody filter or a page of items it led to the whole list, the filter and the page lost."""
    import html

    from tests.tools import sign_in

    officer = stack.user(role="officer", unit="unit-a")
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60, cookies={"evidence_lang": "zh"}) as b:
        sign_in(b, officer)
        for path, link in (("/cases?mine=true", "?mine=true&lang=en"), ("/cases?lang=zh&mine=true", "?mine=true&lang=en"),
                           ("/cases", "?lang=en")):
            page = b.get(path).text
            found = re.search(r'<a class="lang" href="([^"]*)"', page)
            assert found and html.unescape(found.group(1)) == link, (path, found and found.group(1))
        english = b.get("/cases?mine=true&lang=en")
        found = re.search(r'<a class="lang" href="([^"]*)"', english.text)
        assert html.unescape(found.group(1)) == "?mine=true&lang=zh"
