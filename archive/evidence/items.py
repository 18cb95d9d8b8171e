"""Evidence items: reading them back, their row locks and flags, objects derived from them.

Receiving originals lives in :mod:`archive.evidence.receiving`, fixity in
:mod:`archive.evidence.fixity`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, func, literal, select, tuple_
from sqlalchemy.orm import Session, defer, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from archive.custody import ledger
from archive.db import Database, lock_row
from archive.errors import NotFound, RangeNotSatisfiable
from archive.models import (
    Case, DerivedObject, EvidenceItem, EvidenceKind, EvidenceListVersion, Role, User, Vault, new_id, utcnow,
)
from archive.storage import ObjectStore
from archive.storage.streams import HashingStream
from archive.identity.users import CASE_READERS, actor_name, load_case, readable_cases, require_role, sees_unit
from archive.wording import Sentences

_BYTES_RANGE = re.compile(r"bytes=\s*([0-9]{0,100})\s*-\s*([0-9]{0,100})", re.ASCII | re.IGNORECASE)
"""A single byte range; the unit's name is matched without regard to case (RFC 9110 section 14.1)."""


def original_key(vault: str, item_id: str) -> str:
    """Where an original lives: inside its vault, named by its item id."""
    return f"{vault}/originals/{item_id}"


def derived_key(vault: str, item_id: str, role: str, suffix: str = "") -> str:
    """Where an object derived from an original lives (same vault, names its original)."""
    return f"{vault}/derived/{item_id}/{role}{suffix}"


def is_wacz(item: EvidenceItem) -> bool:
    """A web archive package (WACZ) a browser can replay: a top-level item named ``*.wacz``
    (the archive's own captures, ``inspection.wacz``, and uploaded packages alike)."""
    return item.parent_id is None and item.original_filename.lower().endswith(".wacz")


VIEWABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf"})
"""Types a browser may show in place (raster images and PDF): nothing in them runs script."""


def is_viewable(item: EvidenceItem) -> bool:
    """An original the workspace shows in the browser: its type as the archive sniffed it from
    the bytes (never the uploader's claim) is a raster image or PDF."""
    return item.media_type in VIEWABLE_TYPES


_ITEMS, _OBJECTS = EvidenceItem.__table__, DerivedObject.__table__
_LISTED_COLUMNS = [c for c in _ITEMS.c if c.name not in ("media_facts", "listed_facts")]
SHOWN_DERIVED = ("id", "item_id", "role", "media_type", "sha256", "size")
"""What an item's record shows of each derived object, in the order :class:`ItemRecord` holds them."""
_SHOWN_DERIVED = select(*(_OBJECTS.c[name] for name in SHOWN_DERIVED))
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
"""The SHA-256 of no bytes: every empty file's."""
ALIKE = ("kind", "device_id", "recorded_start", "original_filename")
"""What two empty files must share to be one piece of evidence (:func:`same_evidence`)."""
_ALIKE_COLUMNS = tuple(_ITEMS.c[name] for name in ALIKE)


def same_evidence(item: Any, other: Any) -> bool:
    """Whether ``other``, holding the same content (SHA-256) as ``item``, is the same evidence.

    No bytes are no content to be the same evidence by: an empty file is itself a fact (a
    camera that produced nothing), so two empty items are the same evidence only when
    described alike (:data:`ALIKE`: the same file sent again), within a case or across cases;
    any other content is the same evidence wherever it is. ``item`` and ``other`` are items,
    item records or rows with the :data:`ALIKE` columns."""
    return item.sha256 != EMPTY_SHA256 or all(getattr(item, a) == getattr(other, a) for a in ALIKE)


_MEMBERS = (select(_ITEMS.c.id, _ITEMS.c.parent_id, _ITEMS.c.media_type, _ITEMS.c.sha256, _ITEMS.c.size)
            .order_by(_ITEMS.c.received_at, _ITEMS.c.id))


def case_items(session: Session, *, case_id: str, listing: bool = False, after: str | None = None,
               limit: int | None = None, offset: int = 0) -> list[EvidenceItem]:
    """The evidence items of a case, oldest first (the caller has checked access to the case).

    ``listing``: for a list of many items, leave out what a list does not show (media
    facts, upload details). The items' case and vault are not loaded (the caller has them).
    ``after`` and ``limit`` page through them as in :func:`case_item_page`; ``offset`` skips
    that many first (a page by its number, as the case page shows them).
    """
    query = _paged(session, select(EvidenceItem), case_id=case_id, after=after, limit=limit)
    if offset:
        query = query.offset(offset)
    # Every item has the caller's case and its vault: joined to each row they made a page's
    # rows several times wider (the case, its unit and vault, the item's vault) for nothing.
    query = query.options(lazyload(EvidenceItem.case), lazyload(EvidenceItem.vault))
    if listing:
        query = query.options(defer(EvidenceItem.media_facts), defer(EvidenceItem.details))
    items = list(session.execute(query).scalars().unique())
    if not listing:
        _load_members(session, items)
    return items


def count_case_items(session: Session, *, case_id: str) -> int:
    """How many items the case holds (counted on the index of the case's order)."""
    return session.execute(select(func.count()).select_from(_ITEMS).where(_ITEMS.c.case_id == case_id)).scalar_one()


def place_in_case(session: Session, *, case_id: str, item_id: str) -> int | None:
    """How many of the case's items come before ``item_id`` in its order; None when it is no
    item of the case."""
    mark = select(_ITEMS.c.received_at, _ITEMS.c.id).where(_ITEMS.c.id == item_id, _ITEMS.c.case_id == case_id)
    row = session.execute(mark).first()
    if row is None:
        return None
    before = _beside(row.received_at, row.id, later=False)
    return session.execute(select(func.count()).select_from(_ITEMS).where(_ITEMS.c.case_id == case_id, before)).scalar_one()


def _beside(received_at: datetime, item_id: str, *, later: bool) -> ColumnElement[bool]:
    """The items after (``later``) or before the one received at ``received_at`` with id
    ``item_id`` in a case's order: one comparison of (time, id) pairs, which the index on the
    case's order seeks to. The same condition as two (later, or as late with a greater id)
    made PostgreSQL walk the case's items from its first (93 ms against 0.13 ms at item 90,000)."""
    key = tuple_(_ITEMS.c.received_at, _ITEMS.c.id)
    mark = tuple_(literal(received_at, _ITEMS.c.received_at.type), literal(item_id, _ITEMS.c.id.type))
    return key > mark if later else key < mark


def _paged(session: Session, query: Select, *, case_id: str, after: str | None, limit: int | None) -> Select:
    """``query`` of evidence items narrowed to a case's, oldest first (by time received, then
    id): at most ``limit`` that come after the item ``after``; an ``after`` that is no item of
    this case is not found (``cursor_not_found``)."""
    query = query.where(EvidenceItem.case_id == case_id)
    if after is not None:
        mark = session.execute(select(EvidenceItem.received_at).where(
            EvidenceItem.id == after, EvidenceItem.case_id == case_id)).scalar_one_or_none()
        if mark is None:
            raise NotFound(f"{after!r} is no item of this case to continue after", code="cursor_not_found")
        query = query.where(_beside(mark, after, later=True))
    query = query.order_by(EvidenceItem.received_at, EvidenceItem.id)
    return query if limit is None else query.limit(limit)


class ItemRecord:
    """An item's columns as the database gave them (no ORM object), as attributes, with its
    derived objects (tuples of :data:`SHOWN_DERIVED`'s columns) and, for a capture bundle, its
    members (rows). The columns are copied in once: read through the row at each use (a method
    called for every one) they were an eighth of a 200-item list's time; a derived object's
    six values read by name from its row were another seventh."""

    def __init__(self, columns: dict[str, Any], derived: list[tuple], members: list[Row]) -> None:
        self.__dict__.update(columns)
        self.derived, self.members = derived, members
        self.duplicate_of: list[str] = []


def case_item_page(session: Session, *, case_id: str, user: User, after: str | None = None,
                   limit: int | None = None) -> list[ItemRecord]:
    """A page of a case's items for the API to show whole, read as rows in four queries (the
    items, their derived objects, the members of the capture bundles among them, the other
    items of the same content in cases ``user`` may see): oldest first, at most ``limit``
    after the item ``after`` (see :func:`_paged`).

    Their media facts leave out a document's extracted text (up to 200,000 characters an
    item: a page of 500 documents would carry a hundred million); the item's own record has it.
    They are read from ``listed_facts``, which the database keeps (taking the text out of every
    row at each request was a fifth of a 200-item list's time, PostgreSQL's included).
    """
    # Core statements run on the session's connection (run by the session, their rows went
    # through the ORM's loading for no object), fetched whole, derived objects read by
    # position: 9.3-9.9 -> 6.7-7.3 ms of CPU a 200-item page in-process on PostgreSQL.
    run = session.connection().execute
    page = _paged(session, select(_ITEMS.c.id), case_id=case_id, after=after, limit=limit)
    result = run(page.with_only_columns(*_LISTED_COLUMNS, _ITEMS.c.listed_facts.label("media_facts")))
    keys, rows = list(result.keys()), result.all()
    records = [ItemRecord(dict(zip(keys, r)), [], []) for r in rows]
    by_id = {r.id: r for r in records}
    if records:
        # The page's ids as a subquery, not a list of hundreds of parameters to render and
        # convert for every request.
        on_page = select(page.subquery().c.id)
        for d in run(_SHOWN_DERIVED.where(_OBJECTS.c.item_id.in_(on_page)).order_by(_OBJECTS.c.created_at)).all():
            by_id[d[1]].derived.append(tuple(d))
    bundles = [r.id for r in records if _is_bundle(r)]
    if bundles:
        for m in run(_MEMBERS.where(_ITEMS.c.parent_id.in_(bundles))):
            by_id[m.parent_id].members.append(m)
    duplicates = duplicates_of(session, user=user, items=records,
                               among=select(page.with_only_columns(_ITEMS.c.sha256).subquery().c.sha256))
    for record in records:
        record.duplicate_of = duplicates[record.id]
    return records


_LIST_VERSIONS = select(EvidenceListVersion.key, EvidenceListVersion.n).where(
    EvidenceListVersion.key.in_([bindparam("case_id"), "content"]))


def list_version(session: Session, *, case_id: str) -> tuple[int, int]:
    """What a case's evidence list is made of has changed this often: (the case's items and
    their derived objects, content arriving in one case that another holds), as database
    triggers count them (revision 0024). Take it before reading the list: a list read
    afterwards is at least as new, so one kept under these numbers is stale once they move."""
    numbers = dict(session.connection().execute(_LIST_VERSIONS, {"case_id": case_id}).all())
    return numbers.get(case_id, 0), numbers.get("content", 0)


@dataclass(frozen=True)
class CaseNames:
    """What an item's record shows of its case: its number and its vault's name."""

    case_number: str
    vault: str

    @classmethod
    def of(cls, case: Case) -> CaseNames:
        return cls(case.case_number, case.vault.name)


# An item's read, as statements built once: the ORM's read of the item with its case, unit,
# vault and derived objects as objects, and a duplicates query built for each request, were
# half of its CPU (2.1 -> 1.1 ms in-process against PostgreSQL, the same bytes answered).
_ITEM_READ = (
    select(*(c for c in _ITEMS.c if c.name != "listed_facts"), Case.unit_id.label("case_unit_id"),
           Case.case_number.label("case_number"), Vault.name.label("vault_name"))
    .join(Case, Case.id == _ITEMS.c.case_id).join(Vault, Vault.case_id == Case.id)
    .where(_ITEMS.c.id == bindparam("item_id")))
_ITEM_OBJECTS = _SHOWN_DERIVED.where(_OBJECTS.c.item_id == bindparam("item_id")).order_by(_OBJECTS.c.created_at)
_ITEM_MEMBERS = _MEMBERS.where(_ITEMS.c.parent_id == bindparam("item_id"))
_SAME_CONTENT = (select(_ITEMS.c.id, _ITEMS.c.sha256, *_ALIKE_COLUMNS).join(Case, Case.id == _ITEMS.c.case_id)
                 .where(_ITEMS.c.sha256 == bindparam("sha256")).order_by(_ITEMS.c.received_at, _ITEMS.c.id))
_SAME_CONTENT_IN_UNIT = _SAME_CONTENT.where(Case.unit_id == bindparam("unit_id"))
_CASE_COLUMNS = ("case_unit_id", "case_number", "vault_name")


def item_record(session: Session, *, user: User, item_id: str) -> tuple[ItemRecord, CaseNames]:
    """An item the user may read, as :func:`case_item_page` gives a page's items (its media
    facts whole, its duplicates set), and its case's names. Another unit's item is not found,
    as an unknown one: the answer names neither its case nor its unit."""
    require_role(user, CASE_READERS, doing="read evidence")
    run = session.connection().execute  # rows, not ORM results (see case_item_page)
    row = run(_ITEM_READ, {"item_id": item_id}).mappings().first()
    if row is None or not sees_unit(user, row["case_unit_id"]):
        raise NotFound(f"no evidence item {item_id} visible to you", code="item_not_found")
    record = ItemRecord({k: v for k, v in row.items() if k not in _CASE_COLUMNS},
                        [tuple(d) for d in run(_ITEM_OBJECTS, {"item_id": item_id}).all()], [])
    if _is_bundle(record):
        record.members = run(_ITEM_MEMBERS, {"item_id": item_id}).all()
    same = (run(_SAME_CONTENT, {"sha256": row["sha256"]}) if user.role == Role.admin else
            run(_SAME_CONTENT_IN_UNIT, {"sha256": row["sha256"], "unit_id": user.unit_id}))
    record.duplicate_of = [other.id for other in same if other.id != item_id and same_evidence(record, other)]
    return record, CaseNames(row["case_number"], row["vault_name"])


def _is_bundle(item: EvidenceItem | ItemRecord | Row) -> bool:
    return item.kind == EvidenceKind.remote_capture and item.parent_id is None


def _load_members(session: Session, items: list[EvidenceItem]) -> None:
    """Give the capture bundles among ``items`` their members, in one query for them all (not
    one per bundle, and none when there is no bundle: a selectin load of every item's members
    cost a 200-item page a third of its time even when it held no bundle)."""
    bundles = {i.id: i for i in items if _is_bundle(i)}
    if not bundles:
        return
    members: dict[str, list[EvidenceItem]] = {bundle_id: [] for bundle_id in bundles}
    query = (select(EvidenceItem).where(EvidenceItem.parent_id.in_(bundles))
             .options(lazyload(EvidenceItem.case), lazyload(EvidenceItem.vault))
             .order_by(EvidenceItem.received_at, EvidenceItem.id))
    for member in session.execute(query).scalars().unique():
        members[member.parent_id].append(member)  # type: ignore[index]
    for bundle_id, bundle in bundles.items():
        set_committed_value(bundle, "members", members[bundle_id])


def duplicates_of(session: Session, *, user: User, items: Iterable[EvidenceItem | ItemRecord],
                  among: Select | None = None) -> dict[str, list[str]]:
    """For each item, the other items with the same content in cases the user may see that
    are the same evidence (:func:`same_evidence`: an empty item only those described alike).

    ``among``: a query of the items' hashes (a page's), in place of each hash as a parameter:
    a statement with hundreds of parameters is converted anew by the driver for every request
    (it caches only short ones)."""
    items = list(items)
    if not items:
        return {}
    hashes = among if among is not None else {i.sha256 for i in items}
    query = (select(EvidenceItem.id, EvidenceItem.sha256, *_ALIKE_COLUMNS).where(EvidenceItem.sha256.in_(hashes))
             .order_by(EvidenceItem.received_at, EvidenceItem.id))
    cases = readable_cases(user)
    if cases is not None:
        # The unit's cases as a set to be in, not a table joined: joined, SQLite read every item
        # of the unit's cases to find the few of these hashes (50 ms a 200-item page among
        # 100,000 items, against 0.3 ms from the index on the hash).
        query = query.where(EvidenceItem.case_id.in_(cases))
    holders: dict[str, list[Row]] = {}
    for row in session.connection().execute(query).all():
        holders.setdefault(row.sha256, []).append(row)
    return {i.id: [other.id for other in holders.get(i.sha256, []) if other.id != i.id and same_evidence(i, other)]
            for i in items}


def load_item(session: Session, *, user: User, item_id: str) -> EvidenceItem:
    """An item the user may read (its case must be visible to them). Another unit's item
    answers exactly like an unknown one: the answer names neither its case nor its unit."""
    require_role(user, CASE_READERS, doing="read evidence")
    item = session.get(EvidenceItem, item_id)
    if item is None:
        raise NotFound(f"no evidence item {item_id} visible to you", code="item_not_found")
    try:
        load_case(session, user=user, case_id=item.case_id)
    except NotFound:
        raise NotFound(f"no evidence item {item_id} visible to you", code="item_not_found") from None
    return item


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive from a single-range ``Range`` header; None for the whole file.

    As RFC 9110 section 14.2 has it, a Range that is not one valid ``bytes`` range (another
    unit, several ranges, bad syntax, a last byte before the first) is ignored and the whole
    file served; only a valid range that selects nothing of the file is refused
    (:class:`RangeNotSatisfiable`, 416): a first byte at or past its end (any first byte of
    an empty file), or a suffix of no bytes. A suffix longer than the file is all of it; a
    suffix of an empty file is ignored, since no ``Content-Range`` can name an empty part.
    """
    match = _BYTES_RANGE.fullmatch((header or "").strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first and last and int(first) > int(last):
        return None
    if first == "":
        if int(last) == 0:
            raise RangeNotSatisfiable(f"range {header!r} asks for no bytes", size=size)
        return (max(size - int(last), 0), size - 1) if size else None
    if int(first) >= size:
        raise RangeNotSatisfiable(f"range {header!r} outside 0..{size - 1}", size=size)
    return int(first), min(int(last) if last else size - 1, size - 1)


ITEM_ERRORS = Sentences("item_error", {
    "not_found": "no evidence item {item}",
}, fields={"item": r"\S+"})
"""Why an item's work cannot go on: it is not there (the ``item_not_found`` error's message,
kept as a processing step's reason or a work's last error when the item has gone)."""


READ_PURPOSES = Sentences("purpose", {
    "content": "content",
    "derived": "derived:{role}",
    "seal": "seal:{role}",
    "text": "extracted text",
}, fields={"role": r"[a-z0-9_]+"})
"""Why content was read (the ``purpose`` of a ``content_read`` custody entry): the original,
a derived object of a role, a seal object of a role, a document's text extracted from it
(shown with the item's record: :func:`shows_text`)."""


def shows_text(item: EvidenceItem | ItemRecord) -> bool:
    """Whether the item's record carries text extracted from its content (a document's
    ``media_facts.document.text``): showing it is a read of the evidence, recorded as one."""
    document = (item.media_facts or {}).get("document")
    return isinstance(document, dict) and bool(document.get("text"))


def record_read(
    database: Database, *, user: User, item: EvidenceItem, byte_range: tuple[int, int] | None,
    purpose: str = READ_PURPOSES.say("content"),
) -> dict[str, Any]:
    """Custody entry for a read of evidence, in the ledger before the first byte leaves
    (:func:`archive.custody.ledger.record`: the reads a process serves at once share one
    commit); ``purpose`` is one of :data:`READ_PURPOSES`. The caller holds no connection.
    Returns its details (see :func:`record_read_interrupted`)."""
    details = {"purpose": purpose, "range": list(byte_range) if byte_range else None, "sha256": item.sha256}
    ledger.record(database, actor=actor_name(user), action="content_read", case_id=item.case_id, item_id=item.id,
                  details=details)
    return details


def record_read_interrupted(db: Database, *, actor: str, case_id: str, item_id: str, details: dict[str, Any],
                            sent: int, stopped: str) -> None:
    """Custody entry ``content_read_interrupted``: a read recorded by :func:`record_read` ended
    after ``sent`` bytes, short of what it asked for, because it ``stopped`` (the store failing
    part-way, the reader gone)."""
    ledger.record(db, actor=actor, action="content_read_interrupted", case_id=case_id, item_id=item_id,
                  details={**details, "sent": sent, "reason": stopped})


def lock_item(session: Session, item_id: str) -> EvidenceItem:
    """Load an item and lock its row until the transaction ends (serialises workers)."""

    item = lock_row(session, EvidenceItem, item_id)
    if item is None:
        raise NotFound(ITEM_ERRORS.say("not_found", item=item_id), code="item_not_found")
    return item


def set_task_state(item: EvidenceItem, task: str, state: str, reason: str | None = None) -> None:
    """Record a processing task's state on the item (shown in the API as ``processing``)."""
    processing = dict(item.processing or {})
    processing[task] = {"state": state, "reason": reason, "at": ledger.iso_utc(datetime.now(timezone.utc))}
    item.processing = processing


def add_fact(item: EvidenceItem, name: str, value: Any) -> bool:
    """Record a fact found by a processing step once (``media_facts[name]``).

    Returns False, changing nothing, when the fact is already recorded (a step run twice).
    """
    if name in (item.media_facts or {}):
        return False
    item.media_facts = {**(item.media_facts or {}), name: value}
    return True


def add_flag(row: EvidenceItem | Case, flag: str) -> None:
    """Add a flag to an item or a case (kept as a sorted set); the one way flags are added."""
    row.flags = sorted(set(row.flags or []) | {flag})


def find_derived(session: Session, *, item_id: str, role: str) -> DerivedObject | None:
    """The object of ``role`` derived from an item, if one was stored."""

    return session.execute(
        select(DerivedObject).where(DerivedObject.item_id == item_id, DerivedObject.role == role)
    ).scalar_one_or_none()


def store_derived(
    *,
    db: Database,
    store: ObjectStore,
    item_id: str,
    role: str,
    chunks: Iterable[bytes],
    media_type: str,
    suffix: str = "",
    actor: str = "system:worker",
    details: dict[str, Any] | None = None,
) -> DerivedObject:
    """Store a new object made from an original in the original's vault, then its row.

    Object first, row second: a crash in between leaves a harmless orphan. The key
    carries a fresh id, so a retry never collides with such an orphan. The object is
    locked like its original. Safe to run twice: when the item already has an object
    of ``role`` it is returned and nothing new is stored or recorded. The row and its
    ``derived_created`` custody entry are written in one transaction.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(ITEM_ERRORS.say("not_found", item=item_id), code="item_not_found")
        existing = find_derived(session, item_id=item_id, role=role)
        if existing is not None:
            return existing
        vault, retention = item.vault.name, item.retention_until
    key = derived_key(vault, item_id, role, f".{new_id()}{suffix}")
    stream = HashingStream(chunks, "sha256")
    stored = store.put(key, stream, content_type=media_type)
    until = retention or utcnow() + timedelta(days=1)
    store.lock(key, version_id=stored.version_id, until=until)
    with db.session() as session:
        item = lock_item(session, item_id)
        existing = find_derived(session, item_id=item_id, role=role)
        if existing is not None:
            # Another worker won the race; our object stays an unreferenced orphan.
            return existing
        derived = DerivedObject(
            item_id=item_id, role=role, media_type=media_type, sha256=stream.hexdigest("sha256"),
            size=stream.size, storage_key=key, storage_version=stored.version_id,
        )
        session.add(derived)
        session.flush()
        ledger.append(
            session, actor=actor, action="derived_created", case_id=item.case_id, item_id=item_id,
            details={
                "role": role, "derived_id": derived.id, "media_type": media_type, "sha256": derived.sha256,
                "size": derived.size, "storage_key": key, "storage_version": stored.version_id,
                "original_sha256": item.sha256, **(details or {}),
            },
        )
    return derived
