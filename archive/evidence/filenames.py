"""The one rule for a file name a client gives us.

Every entry point that lets a client name a file (a direct upload's ``filename``, tus
``Upload-Metadata``, each path component of a capture bundle's members) checks it here,
before a byte is stored. A name is refused, never rewritten: a silently changed name is
a changed record, and an officer must learn that the name was not kept as given.
"""

from __future__ import annotations

import re

from archive.errors import InvalidInput

MAX_BYTES = 255
"""Longest name in UTF-8 bytes: the limit of ext4, XFS, NTFS and of most tools a court uses."""

# Characters that make a name lie about itself or break the tools that show it: C0 and
# C1 controls and DEL, and the bidirectional marks, embeddings, overrides and isolates
# that can make "exe.mp4" display as "mp4.exe" (U+061C, U+200E-F, U+202A-E, U+2066-9).
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffd]")
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Windows device names stay devices whatever their extension or case ("con.mp4", "Lpt1").
_DEVICE = re.compile(r"(?i)(con|prn|aux|nul|com[1-9\u00b9\u00b2\u00b3]|lpt[1-9\u00b9\u00b2\u00b3])")


def bad_character(text: str) -> str | None:
    """What is wrong with the first character of ``text`` that would make a name lie about
    itself or break the tools that show it (a control or bidirectional-formatting
    character, an unpaired surrogate), e.g. ``"a control character (U+0001)"``; None if none."""
    bad = _BAD_CHAR.search(text)
    if bad is None:
        return None
    ch = bad.group()
    kind = (
        "a bidirectional formatting character" if ch in _BIDI
        else "an unpaired surrogate" if "\ud800" <= ch <= "\udfff"
        # U+FFFD stands where bytes were not UTF-8: the name as sent is not what would be kept.
        else "a replacement character for bytes that are not UTF-8" if ch == "\ufffd"
        else "a control character"
    )
    return f"{kind} (U+{ord(ch):04X})"


def refuse_nul(text: str, *, what: str) -> None:
    """Raise ``nul_character`` when ``text`` holds a NUL (no database text can: see
    :func:`archive.db._refuse_nul`), before any other check of it names the NUL otherwise."""
    if "\x00" in text:
        raise InvalidInput(f"{what} must not contain a NUL character", code="nul_character")


def check_filename(name: str, *, what: str = "filename") -> str:
    """Return ``name`` unchanged when it is a plain file name; raise InvalidInput otherwise.

    A NUL is ``nul_character``; every other refusal is ``invalid_filename`` with a message
    saying what is wrong: empty, ``.``/``..``, a path separator, a control or
    bidirectional-formatting character, a reserved device name, a trailing dot or space,
    or more than :data:`MAX_BYTES` UTF-8 bytes. Any other Unicode (Chinese names, spaces
    inside the name, emoji) is accepted as given.
    """
    refuse_nul(name, what=what)
    if not name:
        raise InvalidInput(f"{what} is empty", code="invalid_filename")
    if name in (".", ".."):
        raise InvalidInput(f"{what} {name!r} is not a file name", code="invalid_filename")
    if "/" in name or "\\" in name:
        raise InvalidInput(f"{what} must be a bare file name without '/' or '\\' (got {name!r})", code="invalid_filename")
    bad = bad_character(name)
    if bad:
        raise InvalidInput(f"{what} contains {bad}", code="invalid_filename")
    if name[-1] in ". ":
        raise InvalidInput(f"{what} must not end with a dot or a space (got {name!r})", code="invalid_filename")
    if _DEVICE.fullmatch(name.split(".", 1)[0].rstrip(" ")):
        raise InvalidInput(f"{what} {name!r} is a reserved device name on Windows", code="invalid_filename")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise InvalidInput(f"{what} is {size} UTF-8 bytes long; at most {MAX_BYTES} are allowed", code="invalid_filename")
    return name
