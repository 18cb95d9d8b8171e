"""Times as a court clerk reads them: in a time zone, with the offset written.

Seals state their moments in UTC; only the report turns them into local time
(``2026-03-01 18:00:00 +08:00``). The zone is ``--tz`` (an IANA name); without it, the
zone named by the ``TZ`` environment variable when one is set (the clerk said so), else
China Standard Time, ``Asia/Shanghai``, whatever the machine's own clock is set to: court
machines are often left on UTC, and the corps' documents all speak UTC+8.

Zone data comes from the system (``/usr/share/zoneinfo``) or from the ``tzdata`` package,
a dependency of this distribution, so a machine without a zone database still knows every
zone offline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_ZONE", "default_zone", "local_time", "localise_times", "zone"]

DEFAULT_ZONE = "Asia/Shanghai"


class UnknownZone(ValueError):
    """A time zone name that neither the system nor ``tzdata`` knows."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`UnknownZone` when it is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownZone(f"unknown time zone {name!r} (expected an IANA name such as Asia/Shanghai)") from exc


def default_zone(environ: Mapping[str, str]) -> tzinfo:
    """The zone of ``TZ`` when it is set, else Asia/Shanghai.

    ``TZ`` may be an IANA name (``Europe/Berlin``, ``:Europe/Berlin``) or a POSIX rule
    (``CST-8``) that only the C library reads; for the latter the machine's local zone,
    as the C library applies it, is used.
    """
    name = environ.get("TZ", "").removeprefix(":")
    if not name:
        return zone(DEFAULT_ZONE)
    try:
        return zone(name)
    except UnknownZone:
        return datetime.now().astimezone().tzinfo or timezone.utc


def local_time(moment: datetime | str, place: tzinfo) -> str:
    """``2026-03-01 18:00:00 +08:00``: ``moment`` (aware, or ISO 8601 text; naive is UTC) in ``place``."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    here = moment.astimezone(place)
    offset = here.strftime("%z")
    return f"{here:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def localise_times(text: str, place: tzinfo) -> str:
    """``text`` with every ISO 8601 moment that names its zone written in ``place``."""
    return _ISO_MOMENT.sub(lambda m: local_time(m.group(), place), text)
