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
in a cookie; otherwise the cookie; otherwise the browser's ``Accept-Language``
(:mod:`api.language`); otherwise Chinese. ``<html lang>`` says which; a page whose language
``Accept-Language`` decided (or could have) says ``Vary: Accept-Language``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fastapi import Request
from markupsafe import Markup, escape

from api.language import preferred_language
from archive import work
from archive.cases.receipts import CHECK_DETAILS, PART_SEPARATOR, PENDING_SEPARATOR
from archive.cases.closing import GATES
from archive.cases.stages import MOVE_REASONS, REVIEW_GATES
from archive.cases.vault_copies import COPY_FAULTS, FAULT_SEPARATOR
from archive.cases.verification import ITEM_PENDING, ITEM_PROBLEMS
from archive.continuity.gaps import RECORD_FAULTS
from archive.continuity.report import GAP_DETAILS, NO_DEVICE
from archive.custody import checkpoints, ledger
from archive.evidence.fixity import AUDIT_PROBLEMS, ORIGINAL_PROBLEMS, STORE_FAULTS
from archive.evidence.items import ITEM_ERRORS, READ_PURPOSES
from archive.exports.bag import EXPORT_PROBLEMS
from archive.exports.certificate import FONT_PROBLEMS
from archive.exports.plan import PLAN_PROBLEMS
from archive.identity.sso import SSO_REFUSALS
from archive.identity.users import SIGN_IN_REFUSALS
from archive.inspections.policy import POLICY_REFUSALS
from archive.inspections.service import INSPECTION_PROBLEMS
from archive.seals.items import SEAL_PROBLEMS
from archive.seals.pades import COPY_PROBLEMS
from archive.seals.sealer import SEALING_PROBLEMS, SIGNING_REASONS
from archive.storage.protocol import STORE_ERRORS, STORE_OPERATIONS
from archive.i18n import CLIP_FIELDS, action_kind, enum_label, gap_cause_said, said, translate
from archive.i18n.messages import MESSAGES
from archive.wording import Sentences
from ingest.documents import DOCUMENT_PROBLEMS

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
    negotiated: bool = False
    """Neither the address nor the cookie chose: ``Accept-Language`` was asked."""

    @property
    def other(self) -> str:
        """The language the switch link offers."""
        return "en" if self.code == "zh" else "zh"


def language_of(request: Request) -> Language:
    """The page's language: ``?lang=``, else the cookie, else ``Accept-Language``, else Chinese."""
    asked = request.query_params.get("lang")
    if asked in HTML_LANG:
        return Language(asked, HTML_LANG[asked], True)
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in HTML_LANG:
        return Language(remembered, HTML_LANG[remembered], False)
    code = preferred_language(request.headers.get("accept-language"), tuple(HTML_LANG)) or DEFAULT
    return Language(code, HTML_LANG[code], False, negotiated=True)


def translator(code: str) -> Callable[..., str]:
    """``t(key, **values)`` for templates, bound to one language."""

    def t(key: str, **values: object) -> str:
        return translate(code, key, **values)

    return t


DETAIL_VALUES: dict[str, tuple[str, ...]] = {
    "role": ("role", "derived"), "from": ("stage",), "to": ("stage",), "stage": ("stage",),
    "checkpoint": ("checkpoint",), "decision": ("decision",), "level": ("level",),
    "retention_class": ("retention",), "source": ("offset_source",), "previous": ("outcome", "retention"),
    "outcome": ("outcome", "check_outcome", "receipt_status", "result"), "via": ("via",),
    "pending_reasons": ("pending_reason",), "stream": ("stream",), "kind": ("kind", "enforcement_kind"),
}
"""Custody detail keys whose values are stored codes, and the catalogue groups that name them
(the first that has the value)."""


def _label_in(group: str) -> Callable[[str, str], str]:
    """``say`` for :func:`archive.i18n.said`: a stored code as the label of ``group``."""
    return lambda code, value: enum_label(code, group, value)


DETAIL_WORDS = frozenset({"kind"})
"""Custody detail keys of :data:`DETAIL_VALUES` whose values may also be a person's words (an
enforcement action's kind typed through the API): a value no group names is shown as written,
not marked as a machine code."""


_SAY = {"checkpoint": _label_in("checkpoint"), "role": _label_in("derived")}
DETAIL_SENTENCES = frozenset({"reason", "purpose", "problem", "problems", "pades_problem", "error"})
"""Custody detail keys whose values may be sentences of our own code (a stage move's reason,
why content was read, what a fixity check or a verification found, why an export failed, why
a PDF got no PAdES copy, why a document's text could not be read); a value worded otherwise is
shown as written."""


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
        if label is None and key in DETAIL_WORDS:
            return escape(value)
        return escape(label) if label is not None else _machine(value)
    if key in DETAIL_SENTENCES and isinstance(value, str):
        return escape(sentence(code, value))
    if key == "failed" and isinstance(value, str):
        # A verification's failed check, as archive.cases.receipts records it: "WHAT SUBJECT: DETAIL".
        head, sep, detail = value.partition(": ")
        what, _space, subject = head.partition(" ")
        if sep and subject:
            return escape(f"{enum_label(code, 'check', what)} {enum_label(code, 'check_subject', subject)}{sep}"
                          f"{sentence(code, detail)}")
    return escape(value)


def gap_cause_html(code: str, text: str, clips: Mapping[str, object]) -> Markup:
    """A gap's stored cause in language ``code``, each clip it names by id shown by its file
    name and linked to its row (``clips``: item id -> :class:`api.pages.views.Clip`); a cause
    worded otherwise as it was stored."""
    found = gap_cause_said(code, text)
    if found is None:
        return escape(text)
    template, values = found

    def value(name: str, stored: str) -> object:
        clip = clips.get(stored) if name in CLIP_FIELDS else None
        if clip is None:
            return stored
        return Markup('<a href="{}" title="{}" data-testid="gap-clip">{}</a>').format(
            clip.href, clip.about, clip.name)  # type: ignore[attr-defined]

    return Markup(escape(template)).format(**{name: value(name, v) for name, v in values.items()})


def move_reason(code: str, text: str) -> str:
    """A stage move's reason in language ``code``: the archive's own wording translated, a
    person's reason as written."""
    return said(code, text, MOVE_REASONS, **_SAY) or text


def details_text(code: str, pairs: object, *, keep_empty: bool = False) -> Markup:
    """``key: value, ...`` of a custody entry's details (empty values left out at the top)."""
    return Markup(", ").join(
        Markup("{}: {}").format(detail_key(code, k), detail_value(code, k, v))
        for k, v in pairs  # type: ignore[attr-defined]
        if keep_empty or v not in (None, "", [], {})
    )


def processing_reason(code: str, text: str) -> str:
    """A processing step's reason in language ``code``: a sentence of
    :data:`archive.work.STEP_REASONS` translated (its technical detail too when it is one of
    ours), any other text as written."""
    return sentence(code, text)


SENTENCES: tuple[Sentences, ...] = (
    work.STEP_REASONS, MOVE_REASONS, READ_PURPOSES, STORE_FAULTS, ORIGINAL_PROBLEMS, AUDIT_PROBLEMS, COPY_PROBLEMS,
    ITEM_PROBLEMS, COPY_FAULTS, checkpoints.PROBLEMS, ledger.PROBLEMS, RECORD_FAULTS, GAP_DETAILS, EXPORT_PROBLEMS,
    PLAN_PROBLEMS, FONT_PROBLEMS, CHECK_DETAILS, GATES, REVIEW_GATES, ITEM_ERRORS,
    STORE_ERRORS, SEAL_PROBLEMS, SEALING_PROBLEMS, SIGNING_REASONS, SSO_REFUSALS, SIGN_IN_REFUSALS, POLICY_REFUSALS,
    INSPECTION_PROBLEMS, DOCUMENT_PROBLEMS,
)
"""Every table of sentences a page may find stored whole (a check's detail, a custody entry's
problem or reason, a failed export's or background work's error, a closing gate's explanation),
tried in this order."""


def _said(code: str, text: str) -> str | None:
    """``text`` in language ``code`` when it is a sentence of :data:`SENTENCES`, else None."""
    for table in SENTENCES:
        found = said(code, text, table, **_SENTENCE_SAY)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=4096)
def ours(code: str, text: str) -> str | None:
    """A sentence the archive wrote in English, in language ``code``: a sentence of any of
    :data:`SENTENCES` (the sentences it holds said too), or several joined by
    :data:`PART_SEPARATOR` (a check's detail, the gates a stage move found shut); None for any
    other text. A piece that is no sentence of ours belongs to the one before it (a reviewer's
    opinion or a tool's message that holds the separator)."""
    whole = _said(code, text)
    if whole is not None:
        return whole
    if PART_SEPARATOR not in text:
        return None
    parts: list[str] = []
    said_parts: list[str | None] = []
    for piece in text.split(PART_SEPARATOR):
        found = _said(code, piece)
        if parts and found is None:
            parts[-1] += PART_SEPARATOR + piece
            said_parts[-1] = _said(code, parts[-1])
        else:
            parts.append(piece)
            said_parts.append(found)
    if len(parts) < 2 or None in said_parts:
        return None
    return translate(code, "list.separator").join(said_parts)  # type: ignore[arg-type]


def sentence(code: str, text: str) -> str:
    """A sentence the archive stored in English, in language ``code`` (:func:`ours`); any other
    text as written. A page says the same few sentences on many rows (every item's steps and
    their reasons): each text is read once per language, not against every table each time."""
    if not text:
        return text
    said_ours = ours(code, text)
    return text if said_ours is None else said_ours


def _faults(code: str, value: str) -> str:
    """Vault copy faults (``KEY: PROBLEM`` joined by :data:`FAULT_SEPARATOR`), each problem said."""
    # A fault's problem may hold the separator itself: split only where the next fault's key begins.
    faults = re.split(re.escape(FAULT_SEPARATOR) + r"(?=\S+: )", value)
    return translate(code, "list.separator").join(
        f"{key}: {sentence(code, problem)}" if problem else key
        for key, _sep, problem in (fault.partition(": ") for fault in faults))


def _yes_no(code: str, value: str) -> str:
    return translate(code, "value.yes" if value == "True" else "value.no")


_SENTENCE_SAY: dict[str, Callable[[str, str], str]] = {
    **_SAY,
    "sealed": _yes_no,
    "size": lambda code, value: translate(code, "value.none") if value == "None" else value,
    "pending": lambda code, value: translate(code, "list.comma").join(
        said(code, part, ITEM_PENDING, status=_label_in("seal")) or part for part in value.split(PENDING_SEPARATOR)),
    "status": lambda code, value: enum_label(code, "seal", value.strip("'")),
    "level": _label_in("level"),
    "says": _label_in("gap_status"),
    "told": _label_in("gap_status"),
    "state": lambda code, value: enum_label(code, "gap_status", value) if f"gap_status.{value}" in MESSAGES
    else sentence(code, value),
    "device": lambda code, value: translate(code, "gap_detail.no_device") if value == NO_DEVICE else value,
    "faults": _faults,
    "stage": _label_in("stage"),
    "kind": action_kind,
    "stages": lambda code, value: translate(code, "list.comma").join(
        enum_label(code, "stage", stage) for stage in value.split(", ")),
    "export_status": _label_in("export_status"),
    "operation": lambda code, value: said(code, value, STORE_OPERATIONS) or value,
    # A sentence held by another (its reason, its problem): said too when it is ours.
    **{name: sentence for name in ("reason", "problem", "detail", "record", "before", "what")},
}
"""How each placeholder of a stored sentence is said in the reader's language: a stored code by
its label, a truth value as yes/no, a sentence held inside another as that sentence; any
other value as stored."""


def receipt_detail(code: str, text: str) -> str:
    """A verification receipt's check detail in language ``code``: the archive's own sentences
    (:data:`SENTENCES`, parts of :data:`archive.cases.receipts.CHECK_DETAILS`) translated, yes/no
    for a Python truth value; any other text as written."""
    return sentence(code, text)


@dataclass(frozen=True)
class ErrorText:
    """What the error page says: a heading for the status, an explanation, and the code
    (shown small, for support)."""

    heading: str
    explanation: str
    """Chinese: the catalogue's sentence for the code (empty for a code it does not know yet);
    English: the domain's own message, which names exactly what went wrong."""
    code: str
    particulars: str = ""
    """Chinese: the domain's message said in Chinese when it is one of the archive's sentences
    (:func:`ours`: which review a stage move lacks, which item is missing), else empty (a message
    worded otherwise stays out of a Chinese page); English: empty (the explanation says it)."""


@functools.cache
def error_explanations(code: str) -> dict[str, str]:
    """Every error code's explanation in language ``code`` (``error_code.<code>`` of the
    catalogue), for a page's script to say an API error in the reader's language; none in
    English, where the error's own message says it (as on the error page)."""
    if code == "en":
        return {}
    return {key.removeprefix("error_code."): texts[code] for key, texts in MESSAGES.items()
            if key.startswith("error_code.")}


FIELD_LABELS = {
    "case_number": "cases.number", "title": "cases.case_title", "court_reference": "court.reference",
    "legal_basis": "court.basis", "code": "totp.code", "device_id": "admin.device", "offset": "admin.offset",
    "item": "docs.item", "kind": "enforcement.kind", "start": "enforcement.start", "name": "admin.name",
    "outcome": "outcome.label", "retention_class": "records.class", "to": "life.to", "token": "signin.token",
    "unit": "admin.unit", "reason": "field.reason", "decision": "field.decision", "role": "field.role",
}
"""A page form's field -> the message naming it as its form does, for the fields a form cannot
be sent without (the error page names those it could not read; an unlisted one by its name)."""


def field_label(code: str, name: str) -> str:
    """A form field's name as its form labels it, in language ``code`` (without a trailing colon)."""
    key = FIELD_LABELS.get(name)
    return translate(code, key).rstrip("：:") if key else name


def error_text(code: str, *, error_code: str, status: int, message: str, fields: Sequence[str] = ()) -> ErrorText:
    """The error page's text in language ``code`` for an error of ``status`` and ``error_code``
    (``fields``: the names of a form's fields that could not be read, which the English message
    names already and a Chinese page names after its explanation)."""
    heading = f"error_status.{status}" if f"error_status.{status}" in MESSAGES else "error.title"
    if code == "en":
        return ErrorText(translate(code, heading), message, error_code)
    explanation = translate(code, f"error_code.{error_code}") if f"error_code.{error_code}" in MESSAGES else ""
    particulars = ours(code, message) or ""
    if not particulars and fields:
        particulars = translate(code, "error.fields", fields="、".join(dict.fromkeys(field_label(code, f) for f in fields)))
    return ErrorText(translate(code, heading), explanation, error_code, particulars)
