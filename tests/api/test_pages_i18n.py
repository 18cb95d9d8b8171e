"""The workspace's message catalogue: every id a template or a page module uses exists in
Chinese and English, with the same placeholders; the language is chosen and remembered."""

from __future__ import annotations

import re
import string
from pathlib import Path

import httpx

from api.pages.messages import MESSAGES
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
