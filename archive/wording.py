"""Sentences our code stores in English and pages say in the reader's language.

A stage move's reason, a processing step's reason, a fixity fault, a verification receipt's
check detail: each is written once, in English, into a record that is sealed or returned by
the API as it is. Each family of them is one :class:`Sentences` table kept next to the code
that writes it: the code says a sentence by its code and values, and the pages read a stored
sentence back through the same table into its code and values, which the catalogue
(:mod:`archive.i18n`, key ``<family>.<code>``) says in Chinese or English. Rewording a
template changes the writing and the reading together.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Sentences"]


@dataclass(frozen=True)
class Sentences:
    """One family of English sentences, by code."""

    family: str
    """The catalogue prefix: code ``c`` is said by message ``<family>.c``."""
    templates: Mapping[str, str]
    """The English template of each code (``str.format`` placeholders), tried in this order
    when a stored sentence is read back (put the more specific first)."""
    fields: Mapping[str, str] = field(default_factory=dict)
    """What a placeholder can hold, as a regular expression, when read back; any other
    placeholder holds one character or more of free text."""
    _patterns: Mapping[str, re.Pattern[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = {
            code: re.compile("".join(
                re.escape(text) + (f"(?P<{name}>{self.fields.get(name, '.+')})" if name else "")
                for text, name, _spec, _conv in string.Formatter().parse(template)
            ), re.DOTALL)
            for code, template in self.templates.items()
        }
        object.__setattr__(self, "_patterns", patterns)

    def say(self, code: str, /, **values: object) -> str:
        """The English sentence of ``code`` with its placeholders filled (extra values ignored)."""
        return self.templates[code].format(**values)

    def read(self, text: str) -> tuple[str, dict[str, str]] | None:
        """A stored sentence read back: its code and the text of each placeholder; None for a
        text this table does not write (a person's own words, an older wording)."""
        for code, pattern in self._patterns.items():
            found = pattern.fullmatch(text)
            if found:
                return code, found.groupdict()
        return None

    def placeholders(self, code: str) -> set[str]:
        """The names of the placeholders of ``code``'s template."""
        return {name for _text, name, _spec, _conv in string.Formatter().parse(self.templates[code]) if name}
