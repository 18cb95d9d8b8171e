"""An item's JSON as a case's list writes it (orjson, from plain values) is the JSON its
response model writes, including for values orjson cannot write itself."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

from api.schemas import ITEM_PAGE, ItemPublic, item_fields, item_page_json
from archive.models import EvidenceKind, ItemStatus


def _item(**facts: object) -> SimpleNamespace:
    vault = SimpleNamespace(name="vault-1")
    case = SimpleNamespace(case_number="2026-0001", vault=vault)
    derived = SimpleNamespace(id="d-1", item_id="i-1", role="manifest", media_type="application/json",
                              sha256="ab" * 32, size=10)
    return SimpleNamespace(
        id="i-1", case_id="c-1", case=case, parent_id=None, kind=EvidenceKind.bodycam_video,
        original_filename="执法记录仪 第一段.mp4", media_type="video/mp4", size=2**40, sha256="cd" * 32, sm3=None,
        sha512=None, storage_key="vault-1/originals/i-1", storage_version=None,
        retention_until=datetime(2056, 12, 3, 20, 30, 39, tzinfo=timezone.utc), device_id="CAM-07",
        recorded_start=datetime(2026, 3, 1, 2, 0, 0, 500, tzinfo=timezone.utc),
        received_at=datetime(2026, 3, 1, 2, 10, tzinfo=timezone.utc), status=ItemStatus.processed, flags=["gap"],
        processing={"seal": {"state": "done", "reason": None}}, seal_status="sealed", media_facts=facts or None,
        details={"officer": "李伟"}, derived=[derived], members=[],
    )


def test_a_listed_page_is_written_as_the_response_model_writes_it() -> None:
    items = [_item(duration="12.5", fps=29.97, nan=float("nan")), _item()]
    fields = [item_fields(i, duplicate_of=["i-2"]) for i in items]
    models = [ItemPublic.of(i, duplicate_of=["i-2"]) for i in items]
    assert item_page_json(fields) == ITEM_PAGE.dump_json(models)


def test_a_value_orjson_cannot_write_takes_the_models_way() -> None:
    item = _item(probe={"bit_rate": 2**70})  # beyond 64 bits: orjson refuses it
    page = item_page_json([item_fields(item)])
    assert json.loads(page)[0]["media_facts"]["probe"]["bit_rate"] == 2**70
    assert page == ITEM_PAGE.dump_json([ItemPublic.of(item)])
