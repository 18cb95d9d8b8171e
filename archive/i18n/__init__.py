"""What people read, in Chinese first and English second: the message catalogue
(:data:`archive.i18n.messages.MESSAGES`) and the plain-text helpers that say a stored value in
a language.

The catalogue lives here, below every entry point, so that the pages (``api.pages``, which
add markup and the reader's choice of language) and the certificate of a certified export
(``archive.exports.certificate``, which says everything in both languages) read the same
words. Why a Python mapping and not gettext: see :mod:`api.pages.i18n`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from archive.continuity.analysis import NO_DEVICES, cause_of
from archive.i18n.messages import MESSAGES
from archive.wording import Sentences


def translate(code: str, key: str, /, **values: object) -> str:
    """The text of message ``key`` in language ``code``, placeholders filled.

    An unknown key is shown as itself (a page never fails over a missing string; the
    catalogue test fails instead).
    """
    texts = MESSAGES.get(key)
    text = texts[code] if texts else key
    return text.format(**values) if values else text


def enum_label(code: str, group: str, value: object) -> str:
    """The label of a stored value (a status, a kind, a role): ``group.value`` in the
    catalogue, else the value itself, so a new value shows before it is translated."""
    raw = getattr(value, "value", value)
    key = f"{group}.{raw}"
    return translate(code, key) if key in MESSAGES else str(raw)


def action_kind(code: str, kind: str) -> str:
    """An enforcement action's kind in language ``code``: a kind the pages offer (``seizure``)
    by its label, a kind typed otherwise (through the API) as typed."""
    return enum_label(code, "enforcement_kind", kind)


def _action_said(code: str, action: str) -> str:
    """The action a gap cause names (``KIND`` or ``KIND (DESCRIPTION)``, as the continuity
    analysis writes it) with its kind said in language ``code``."""
    kind, sep, rest = action.partition(" (")
    said_kind = action_kind(code, kind)
    if said_kind == kind:
        return action
    if sep and code == "zh" and rest.endswith(")"):
        return f"{said_kind}（{rest[:-1]}）"
    return said_kind + sep + rest


CLIP_FIELDS = ("item", "previous")
"""The placeholders of a gap cause that hold an evidence item's id (the clips it names)."""


def gap_cause_said(code: str, text: str) -> tuple[str, dict[str, str]] | None:
    """A gap's stored cause read back: the catalogue's template of it in language ``code`` (with
    the note of a recording placed by assumption) and the values to fill it with; None for a
    cause worded otherwise (older analyses), which is shown as it was stored. The ids of
    :data:`CLIP_FIELDS` are left for the caller to name."""
    found = cause_of(text)
    if found is None or f"gap_cause.{found[0]}" not in MESSAGES:
        return None
    cause, values, unplaced = found
    if "action" in values:
        values["action"] = _action_said(code, values["action"])
    if values.get("devices") == NO_DEVICES:
        values["devices"] = translate(code, "gap_cause.no_devices")
    return MESSAGES[f"gap_cause.{cause}"][code] + (translate(code, "gap_cause.unplaced") if unplaced else ""), values


def gap_cause(code: str, text: str, *, clips: Mapping[str, str] | None = None) -> str:
    """A gap's cause (stored in English by the continuity analysis) in language ``code``, each
    clip it names by ``clips`` (item id -> how a reader knows it: its file name), an id not in
    ``clips`` as stored; a cause worded otherwise is shown as it was stored."""
    said = gap_cause_said(code, text)
    if said is None:
        return text
    template, values = said
    names = clips or {}
    return template.format(**{k: names.get(v, v) if k in CLIP_FIELDS else v for k, v in values.items()})


def said(code: str, text: str, sentences: Sentences, **say: Callable[[str, str], str]) -> str | None:
    """A stored English sentence in language ``code`` when ``sentences`` wrote it (message
    ``<family>.<code>`` with the sentence's values), else None. ``say``: for a placeholder, a
    function giving its words in ``code`` (a stored code, a yes/no) instead of the stored text."""
    found = sentences.read(text)
    if found is None:
        return None
    sentence, values = found
    return translate(code, f"{sentences.family}.{sentence}",
                     **{name: say[name](code, value) if name in say else value for name, value in values.items()})
