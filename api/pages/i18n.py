"""The pages' languages: Chinese first, English second.

Why a catalogue module and not Babel/gettext: the workspace has two languages and a few
hundred short strings written by the developers themselves; a Python mapping keyed by a
stable message id (``messages.MESSAGES``) needs no extraction or compile step, is checked
by a test (every id a template uses exists, in both languages, with the same
placeholders), and keeps the service runnable from a checkout. Should translators with
their own tools join, the same ids become gettext msgids and the mapping a ``.po`` file.

The language is chosen per request: ``?lang=en`` (or ``zh``) picks it and is remembered
in a cookie; otherwise the cookie; otherwise Chinese. ``<html lang>`` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.pages.messages import MESSAGES

LANG_COOKIE = "evidence_lang"
DEFAULT = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}
"""Our language code -> the BCP 47 tag of ``<html lang>``."""


@dataclass(frozen=True)
class Language:
    """The language of one page: its code, its ``<html lang>`` tag and whether it was asked
    for in the address (then the answer remembers it in the cookie)."""

    code: str
    html: str
    chosen_now: bool

    @property
    def other(self) -> str:
        """The language the switch link offers."""
        return "en" if self.code == "zh" else "zh"


def language_of(request: Request) -> Language:
    """The page's language: ``?lang=``, else the cookie, else Chinese."""
    asked = request.query_params.get("lang")
    if asked in HTML_LANG:
        return Language(asked, HTML_LANG[asked], True)
    remembered = request.cookies.get(LANG_COOKIE)
    code = remembered if remembered in HTML_LANG else DEFAULT
    return Language(code, HTML_LANG[code], False)


def translate(code: str, key: str, **values: object) -> str:
    """The text of message ``key`` in language ``code``, placeholders filled.

    An unknown key is shown as itself (a page never fails over a missing string; the
    catalogue test fails instead).
    """
    texts = MESSAGES.get(key)
    text = texts[code] if texts else key
    return text.format(**values) if values else text


def translator(code: str) -> Callable[..., str]:
    """``t(key, **values)`` for templates, bound to one language."""

    def t(key: str, **values: object) -> str:
        return translate(code, key, **values)

    return t


def enum_label(code: str, group: str, value: object) -> str:
    """The label of a stored value (a status, a kind, a role): ``group.value`` in the
    catalogue, else the value itself, so a new value shows before it is translated."""
    raw = getattr(value, "value", value)
    key = f"{group}.{raw}"
    return translate(code, key) if key in MESSAGES else str(raw)
