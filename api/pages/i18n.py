"""The pages' languages: Chinese first, English second.

The catalogue itself (:mod:`archive.i18n`, shared with the certificate of an export) is
plain text; this module adds the reader's choice of language and markup.

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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import Request
from markupsafe import Markup, escape

from archive.i18n import Phrasings, enum_label, phrased, translate
from archive.i18n.messages import MESSAGES

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


def translator(code: str) -> Callable[..., str]:
    """``t(key, **values)`` for templates, bound to one language."""

    def t(key: str, **values: object) -> str:
        return translate(code, key, **values)

    return t


DETAIL_VALUES: dict[str, tuple[str, ...]] = {
    "role": ("role",), "kind": ("kind",), "from": ("stage",), "to": ("stage",), "stage": ("stage",),
    "checkpoint": ("checkpoint",), "decision": ("decision",), "level": ("level",),
    "retention_class": ("retention",), "source": ("offset_source",), "previous": ("outcome",),
    "outcome": ("outcome", "check_outcome", "receipt_status", "result"), "via": ("via",),
    "pending_reasons": ("pending_reason",),
}
"""Custody detail keys whose values are stored codes, and the catalogue groups that name them
(the first that has the value)."""


def _label_in(group: str) -> Callable[[str, str], str]:
    """``say`` for :func:`archive.i18n.phrased`: a matched code as the label of ``group``."""
    return lambda code, value: enum_label(code, group, value)


MOVE_REASONS = (
    ("move_reason.closed", re.compile(r"closed: every gate held; case archive record sealed")),
    ("move_reason.returned", re.compile(r"returned by the (?P<checkpoint>[a-z_]+) review: (?P<opinion>.*)", re.DOTALL)),
)
"""How archive.cases.closing and archive.cases.reviews word the reason of a stage move they make."""

DETAIL_PHRASINGS = {
    "reason": MOVE_REASONS,
    "purpose": (("purpose.content", re.compile(r"content")),
                ("purpose.derived", re.compile(r"derived:(?P<role>[a-z0-9_]+)")),
                ("purpose.seal", re.compile(r"seal:(?P<role>[a-z0-9_]+)"))),
}
"""Custody detail keys whose values may be worded by our own code (a stage move's reason, why
content was read), and those wordings; a value worded otherwise is shown as written."""
_SAY = {"checkpoint": _label_in("checkpoint"), "role": _label_in("derived")}


def _known(code: str, groups: tuple[str, ...], value: str) -> str | None:
    for group in groups:
        if f"{group}.{value}" in MESSAGES:
            return translate(code, f"{group}.{value}")
    return None


def _machine(value: object) -> Markup:
    """A code with no label yet: shown as itself, marked as a machine code."""
    return Markup("<code>{}</code>").format(value)


def detail_key(code: str, key: str) -> Markup:
    """The label of a custody detail's key, or the key itself as a machine code."""
    return escape(translate(code, f"detail.{key}")) if f"detail.{key}" in MESSAGES else _machine(key)


def detail_value(code: str, key: str, value: object) -> Markup:
    """A custody detail's value as a person reads it: yes/no, a dash for nothing, lists and
    mappings spelled out, stored codes through the catalogue (a code without a label marked
    as one); anything else as written."""
    if isinstance(value, bool):
        return escape(translate(code, "value.yes" if value else "value.no"))
    if value is None or value in ("", [], {}):
        return escape(translate(code, "value.none"))
    if isinstance(value, Mapping):
        return Markup("({})").format(details_text(code, value.items(), keep_empty=True))
    if isinstance(value, (list, tuple)):
        return Markup(", ").join(detail_value(code, key, v) for v in value)
    if key in DETAIL_VALUES and isinstance(value, str):
        label = _known(code, DETAIL_VALUES[key], value)
        return escape(label) if label is not None else _machine(value)
    if key in DETAIL_PHRASINGS and isinstance(value, str):
        return escape(phrased(code, value, DETAIL_PHRASINGS[key], **_SAY) or value)
    return escape(value)


def move_reason(code: str, text: str) -> str:
    """A stage move's reason in language ``code``: the archive's own wording translated, a
    person's reason as written."""
    return phrased(code, text, MOVE_REASONS, **_SAY) or text


def details_text(code: str, pairs: object, *, keep_empty: bool = False) -> Markup:
    """``key: value, ...`` of a custody entry's details (empty values left out at the top)."""
    return Markup(", ").join(
        Markup("{}: {}").format(detail_key(code, k), detail_value(code, k, v))
        for k, v in pairs  # type: ignore[attr-defined]
        if keep_empty or v not in (None, "", [], {})
    )


_PROCESSING_REASONS = (
    ("processing_reason.unprobeable", re.compile(r"unprobeable: (?P<detail>.*)", re.DOTALL)),
    ("processing_reason.not_run", re.compile(r"not run: an earlier step crashed \((?P<detail>.*)\)", re.DOTALL)),
    ("processing_reason.gave_up", re.compile(r"gave up after (?P<attempts>\d+) attempts: (?P<detail>.*)", re.DOTALL)),
)
"""How ingest.pipeline and workers.tasks word a step's reason; the detail after it is the
underlying tool's or error's own message, shown as written."""


def processing_reason(code: str, text: str) -> str:
    """A processing step's reason in language ``code``: its known wording translated, the
    technical detail kept; any other text as written."""
    return phrased(code, text, _PROCESSING_REASONS) or text


_HEX = r"[0-9a-f]+"
_STORE_FAULTS = (
    ("store_fault.missing", re.compile(r"the recorded version is missing from the store")),
    ("store_fault.deleted", re.compile(r"a delete marker hides the recorded version (?P<version>\S+)")),
    ("store_fault.newer_version",
     re.compile(r"a newer version (?P<current>\S+) was written over the recorded version (?P<version>\S+)")),
    ("store_fault.size", re.compile(r"(?P<size>\d+) bytes read back differ from the size recorded")),
)
"""How archive.evidence.fixity words what is wrong with a stored object (ObjectFault.reason)."""
_RECEIPT_FAILURES = (
    ("receipt_detail.original_unreadable", re.compile(r"stored original of item (?P<item>\S+) cannot be read: (?P<reason>.+)")),
    ("receipt_detail.original_size",
     re.compile(r"stored original of item (?P<item>\S+) is (?P<size>\d+) bytes, received (?P<received>\d+)")),
    ("receipt_detail.original_sha256",
     re.compile(rf"stored original of item (?P<item>\S+): sha256 (?P<found>{_HEX}) != received (?P<received>{_HEX})")),
    ("receipt_detail.original_fault", re.compile(r"stored original of item (?P<item>\S+): (?P<reason>.+)")),
)
"""How archive.evidence.fixity words a stored original that fails (a check's whole detail)."""
_RECEIPT_PARTS = (
    ("receipt_detail.sha256", re.compile(rf"sha256 (?P<sha256>{_HEX})")),
    ("receipt_detail.sealed", re.compile(r"sealed (?P<sealed>True|False)")),
    ("receipt_detail.in_checkpoint", re.compile(r"in checkpoint (?P<size>\d+)")),
    ("receipt_detail.pending", re.compile(r"pending: (?P<pending>.+)")),
    ("receipt_detail.entries", re.compile(rf"(?P<size>\d+) entries, root (?P<root>{_HEX})")),
    ("receipt_detail.checkpoints", re.compile(r"(?P<count>\d+) checkpoints")),
    ("receipt_detail.latest", re.compile(r"latest tree size (?P<size>\d+|None)")),
    ("receipt_detail.gaps", re.compile(r"(?P<gaps>\d+) gaps, (?P<accepted>\d+) accepted, (?P<unresolved>\d+) unresolved")),
    ("receipt_detail.analysis_pending", re.compile(r"analysis pending")),
)
"""How archive.cases.receipts words the parts (between "; ") of a check's detail."""
_ITEM_PENDING = (
    ("receipt_detail.pending_seal", re.compile(r"seal \((?P<status>[a-z_]+)\)")),
    ("receipt_detail.pending_checkpoint", re.compile(r"checkpoint covering custody entry (?P<seq>\d+)")),
)
"""How archive.cases.verification words what an item still waits for."""


def _parts(code: str, text: str, sep: str, phrasings: Phrasings, say: dict[str, Callable[[str, str], str]]) -> str:
    """``text``, a list of parts joined by ``sep`` (``"; "`` or ``", "``), in language ``code``
    when every part is worded as one of ``phrasings``; else as written."""
    said = [phrased(code, part, phrasings, **say) for part in text.split(sep)]
    joiner = translate(code, "list.separator" if sep == "; " else "list.comma")
    return text if None in said else joiner.join(said)  # type: ignore[arg-type]


def _yes_no(code: str, value: str) -> str:
    return translate(code, "value.yes" if value == "True" else "value.no")


_RECEIPT_SAY: dict[str, Callable[[str, str], str]] = {
    "sealed": _yes_no,
    "size": lambda code, value: translate(code, "value.none") if value == "None" else value,
    "reason": lambda code, value: phrased(code, value, _STORE_FAULTS) or value,
    "pending": lambda code, value: _parts(code, value, ", ", _ITEM_PENDING, {"status": _label_in("seal")}),
}


def receipt_detail(code: str, text: str) -> str:
    """A verification receipt's check detail in language ``code``: the archive's own wordings
    translated (yes/no for a Python truth value), any other text as written."""
    return phrased(code, text, _RECEIPT_FAILURES, **_RECEIPT_SAY) or _parts(code, text, "; ", _RECEIPT_PARTS,
                                                                           _RECEIPT_SAY)


@dataclass(frozen=True)
class ErrorText:
    """What the error page says: a heading for the status, an explanation, and the code
    (shown small, for support)."""

    heading: str
    explanation: str
    """Chinese: the catalogue's sentence for the code (empty for a code it does not know yet);
    English: the domain's own message, which names exactly what went wrong."""
    code: str


def error_text(code: str, *, error_code: str, status: int, message: str) -> ErrorText:
    """The error page's text in language ``code`` for an error of ``status`` and ``error_code``."""
    heading = f"error_status.{status}" if f"error_status.{status}" in MESSAGES else "error.title"
    if code == "en":
        explanation = message
    else:
        explanation = translate(code, f"error_code.{error_code}") if f"error_code.{error_code}" in MESSAGES else ""
    return ErrorText(translate(code, heading), explanation, error_code)
