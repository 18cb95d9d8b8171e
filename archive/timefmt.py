"""Times as people read them: in the corps' time zone, with the offset written.

Everything is stored and hashed in UTC; only what is shown to a person (pages, the export
certificate, CLI output) goes through :func:`local_time`, so a page, a certificate and a
terminal never disagree about a moment. Gap times use one precision, 0.1 s, for start,
end and duration (:func:`gap_span`), so ``10:00:30.0 - 10:00:38.0, 8.0 s`` adds up.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_TIME_ZONE", "check_zone", "gap_span", "given_time", "local_date", "local_time", "shown"]

DEFAULT_TIME_ZONE = "Asia/Shanghai"


@lru_cache(maxsize=16)
def check_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError when the system does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Asia/Shanghai)") from exc


EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)
"""Moments a person may give (a recording's start, an action's window) lie in [EARLIEST,
LATEST): durations and local times computed from them stay on the calendar."""


_GIVEN_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]"
    r"(?P<clock>[0-9]{2}:[0-9]{2}(?::[0-9]{2})?)(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?P<zone>[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?)?")
"""A date and a time of day as RFC 3339 writes them (``2026-03-01T10:02:00.5+08:00``; seconds
may be left out, a zone too: whether one is required is the caller's rule), and an offset
with seconds, as the upload page writes a local mean time (Shanghai's +08:05:43 before 1901).
Nothing else: ``datetime.fromisoformat`` also reads week dates, basic forms
(``20260301T1002``), comma fractions and hour-only times, and skips a stray character before
the zone (``10:00:00\x00+08:00``, ``10:00:00a+08:00``), so text nobody meant as a time became one;
and it carries an offset's minute or second of 60 or more over (``+08:60`` is +09:00, ``+08:00:60``
+08:01), so a mistyped offset moved the moment instead of being refused."""


def given_time(value: object) -> datetime:
    """A moment a person gave as ISO 8601 text in RFC 3339's profile
    (``2026-03-01T10:02:00+08:00``, :data:`_GIVEN_TIME`); ValueError for anything else.
    Numbers are refused, also as text: ``1700000000`` is not a time of day a person wrote,
    and libraries that read it as Unix seconds disagree on the unit. Whether a zone is
    required is the caller's rule (naive moments come back naive); fractions finer than a
    microsecond are cut to one."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 text, e.g. 2026-03-01T10:02:00+08:00")
    given = _GIVEN_TIME.fullmatch(value)
    if given is not None and given["clock"].endswith(":60"):
        # RFC 3339 writes a leap second so; Python's datetime (and the timeline) has no place for it.
        raise ValueError(f"{value[:40]!r} names a leap second (:60), which cannot be placed on the timeline: "
                         "give :59 or the next minute's :00")
    try:
        if given is None:
            raise ValueError(value)
        fraction = f".{given['fraction'][:6]}" if given["fraction"] else ""
        zone = (given["zone"] or "").upper()
        return datetime.fromisoformat(f"{given['date']}T{given['clock']}{fraction}{zone}")
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 time, e.g. 2026-03-01T10:02:00+08:00") from None


def in_range_utc(moment: datetime) -> datetime | None:
    """An aware ``moment`` in UTC when it lies in [EARLIEST, LATEST), else None."""
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01+14:00 has no UTC form
        return None
    return utc if EARLIEST <= utc < LATEST else None


def _moment(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def local_time(value: datetime | str | None, zone: str = DEFAULT_TIME_ZONE, *, tenths: bool = False) -> str:
    """``2026-03-01 10:00:30 +08:00`` (``tenths``: ``10:00:30.0``); empty for None.

    Accepts aware datetimes (naive ones are UTC, as the database gives them) and ISO 8601
    text as the ledger stores it.
    """
    if value is None or value == "":
        return ""
    place = check_zone(zone)
    utc = _moment(value).astimezone(timezone.utc)
    # Rounded, not cut (10:00:30.96 is 10:00:31.0, never 10:00:30), in UTC before the zone is
    # applied: added to a local time the step would keep the wrong offset across a change
    # of daylight saving time.
    try:
        moment = (utc + timedelta(microseconds=50_000 if tenths else 500_000)).astimezone(place)
    except OverflowError:  # the last moments of year 9999: the calendar has no later local time
        moment = utc
    if tenths:
        text = moment.strftime("%Y-%m-%d %H:%M:%S") + f".{moment.microsecond // 100_000}"
    else:
        text = moment.strftime("%Y-%m-%d %H:%M:%S")
    offset = moment.strftime("%z")
    return f"{text} {offset[:3]}:{offset[3:]}"


def local_date(value: datetime | str | None, zone: str = DEFAULT_TIME_ZONE) -> str:
    """The day of :func:`local_time` (``2026-03-01``); empty for None."""
    return local_time(value, zone).split(" ", 1)[0]


def gap_span(start: datetime | str, end: datetime | str, zone: str = DEFAULT_TIME_ZONE) -> tuple[str, str, str]:
    """(start, end, duration) of a gap at one precision, 0.1 s: the duration shown is the
    difference of the times shown, so the three always agree."""
    s, e = _moment(start), _moment(end)
    ds = round(s.timestamp() * 10)
    de = round(e.timestamp() * 10)
    return local_time(s, zone, tenths=True), local_time(e, zone, tenths=True), f"{(de - ds) / 10:.1f} s"


_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")


def shown(value: object, zone: str = DEFAULT_TIME_ZONE) -> object:
    """A stored value as a person reads it: a datetime, and every moment written in ISO 8601
    with its zone inside a text (custody details, receipt lines), in local time (to the tenth
    of a second when the text gives a fraction: a gap's start is read at the precision its
    duration is); anything else unchanged."""
    if isinstance(value, datetime):
        return local_time(value, zone)
    if not isinstance(value, str):
        return value

    def local(match: re.Match[str]) -> str:
        try:
            return local_time(match.group(), zone, tenths=match.group(1) is not None)
        except ValueError:
            return match.group()

    return _ISO_MOMENT.sub(local, value)
