"""The reader's language from ``Accept-Language`` (RFC 9110 section 12.5.4).

A strict parser, written here because no maintained one is a dependency of the service
(werkzeug comes only with the test tools): a header that breaks the grammar is ignored as a
whole (the caller falls back to its default), rather than half-read. Ranges are matched by
their primary subtag (``zh``, ``zh-CN``, ``zh-Hans`` and ``zh-TW`` all mean our ``zh``; RFC 4647
lookup, as the workspace has one Chinese and one English), ``*`` stands for any language not
named, and ``q=0`` refuses one.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)")
_WEIGHT = re.compile(r";[ \t]*[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_ITEM = re.compile(rf"({_RANGE.pattern})[ \t]*((?:{_WEIGHT.pattern})?)")

MAX_RANGES = 50
"""More ranges than a browser sends: a longer header is ignored (its parse stays cheap)."""


def parse_accept_language(header: str) -> list[tuple[str, float]] | None:
    """The ``(range, q)`` pairs of an ``Accept-Language`` value in the order given, ranges in
    lower case; None when the value breaks the grammar (empty list elements are allowed)."""
    ranges = []
    for element in header.split(","):
        element = element.strip(" \t")
        if not element:
            continue
        match = _ITEM.fullmatch(element)
        if match is None or len(ranges) == MAX_RANGES:
            return None
        weight = _WEIGHT.fullmatch(match.group(2)) if match.group(2) else None
        ranges.append((match.group(1).lower(), float(weight.group(1)) if weight else 1.0))
    return ranges


def preferred_language(header: str | None, offered: tuple[str, ...]) -> str | None:
    """The one of ``offered`` (primary language subtags, in our order of preference) the
    header prefers: the highest weight, then the first named; None when the header is absent,
    malformed, or accepts none of them (the caller's default then applies)."""
    ranges = parse_accept_language(header) if header else None
    if not ranges:
        return None
    anything = max((q for r, q in ranges if r == "*"), default=0.0)
    best: tuple[float, int, str] | None = None
    for code in offered:
        named = [(q, i) for i, (r, q) in enumerate(ranges) if r.split("-", 1)[0] == code]
        # A language named in the header has the weight of its best range; others that of `*`.
        q = max(q for q, _ in named) if named else anything
        first = min((i for _, i in named), default=len(ranges))
        if q > 0 and (best is None or (q, -first) > (best[0], -best[1])):
            best = (q, first, code)
    return best[2] if best else None
