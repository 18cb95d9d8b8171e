"""Conditional requests on stored content (RFC 9110 section 13), by entity tag.

Starlette evaluates If-Range for a file on disk (``FileResponse``) and If-None-Match for
``StaticFiles``, but evidence streams from object storage and neither answers If-Match; so
the routes keep their own streaming and ask :class:`Preconditions` what to send. Every
object has a strong validator for free, its SHA-256, sent as the ETag. The service sends no
Last-Modified, so If-Modified-Since and If-Unmodified-Since are ignored (RFC 9110 sections
13.1.3 and 13.1.4 ignore them without one) and a date in If-Range never matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Header

from archive.errors import InvalidInput

_ENTITY_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')


@dataclass(frozen=True)
class Preconditions:
    """The validators a request sent (None: the field was absent)."""

    if_match: str | None = None
    """If-Match: send only if the representation's tag is one of these (strong comparison)."""
    if_none_match: str | None = None
    """If-None-Match: the client's copy is current if the tag is one of these (weak comparison)."""
    if_range: str | None = None
    """If-Range: honour the Range only if this is the current tag (strong comparison)."""
    range: str | None = None
    """The Range asked for, as sent."""

    def not_modified(self, etag: str) -> bool:
        """Evaluate If-Match, then If-None-Match, for a GET or HEAD of a representation whose
        strong tag is ``etag`` (RFC 9110 section 13.2.2). True means answer 304.

        Raises 412 ``precondition_failed`` when If-Match names no current tag. Call it only
        once the caller may read the object: a precondition must not tell a stranger it exists.
        """
        if self.if_match is not None and not _matches(self.if_match, etag, weak=False):
            raise InvalidInput(f"If-Match does not name the current ETag {etag}", code="precondition_failed",
                               status=412)
        return self.if_none_match is not None and _matches(self.if_none_match, etag, weak=True)

    def range_for(self, etag: str) -> str | None:
        """The Range to honour: none when If-Range names another validator, so that the
        whole representation is sent (RFC 9110 section 13.1.5)."""
        if self.if_range is not None and self.if_range.strip() != etag:
            return None
        return self.range


def _matches(field: str, etag: str, *, weak: bool) -> bool:
    """Whether the list in ``field`` (or ``*``) names ``etag``; a weak comparison ignores ``W/``
    (RFC 9110 section 8.8.3.2). A field that is not a list of tags names none of them."""
    if field.strip() == "*":
        return True
    return any(tag == etag and (weak or not marked) for marked, tag in _ENTITY_TAG.findall(field))


def _joined(values: list[str] | None) -> str | None:
    """A list field sent as several header lines is one comma-separated list (RFC 9110 section 5.3)."""
    return None if values is None else ", ".join(values)


async def preconditions(
    if_match: Annotated[list[str] | None, Header(alias="If-Match", description=(
        "Send the content only if its ETag is one of these (or `*`); otherwise 412 `precondition_failed`."))] = None,
    if_none_match: Annotated[list[str] | None, Header(alias="If-None-Match", description=(
        "304 (no body, no custody entry) if the ETag is one of these, weak tags too (or `*`)."))] = None,
) -> Preconditions:
    """The request's If-Match and If-None-Match (an object served whole)."""
    return Preconditions(if_match=_joined(if_match), if_none_match=_joined(if_none_match))


async def ranged_preconditions(
    plain: Annotated[Preconditions, Depends(preconditions)],
    range_header: Annotated[str | None, Header(alias="Range", description=(
        "One `bytes` range (206); any other value is ignored; one selecting nothing is 416."))] = None,
    if_range: Annotated[str | None, Header(alias="If-Range", description=(
        "Honour the Range only if this is the current ETag; otherwise send all of it (200)."))] = None,
) -> Preconditions:
    """The request's preconditions and its Range (an object served whole or in part)."""
    return replace(plain, if_range=if_range, range=range_header)


PreconditionsDep = Annotated[Preconditions, Depends(preconditions)]
RangedPreconditionsDep = Annotated[Preconditions, Depends(ranged_preconditions)]

NOT_MODIFIED = {304: {"description": "Not Modified: If-None-Match names the current ETag (no body, no custody entry)"}}
"""The 304 of an operation taking :data:`PreconditionsDep`, for its ``responses`` (412 is an error)."""
