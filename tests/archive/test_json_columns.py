"""JSON columns read back whatever they hold, on both databases: the fast parser (orjson)
where it can, json's for what orjson refuses (integers beyond 64 bits, NaN)."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import JSON, Column, Computed, Integer, MetaData, Table, column, insert, select

from archive.db import Database, json_loads
from archive.settings import Settings


def test_json_loads_reads_what_orjson_refuses_too() -> None:
    assert json_loads(b'{"a": [1, 2.5, "\xe4\xb8\xad"]}') == {"a": [1, 2.5, "中"]}
    assert json_loads('{"big": 340282366920938463463374607431768211456}') == {"big": 2**128}
    assert math.isnan(json_loads('[NaN]')[0])


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_json_column_reads_back_every_value(backend, tmp_path, request) -> None:
    url = f"sqlite:///{tmp_path}/j.db" if backend == "sqlite" else request.getfixturevalue("own_pg_url")
    database = Database(Settings(data_dir=tmp_path, database_url=url))
    table = Table("json_values", MetaData(), Column("id", Integer, primary_key=True), Column("value", JSON))
    table.create(database.engine)
    values = [{"facts": {"duration": "12.5", "名称": "执法记录仪"}}, {"big": 2**70}, [1, None, True]]
    try:
        with database.session() as s:
            s.execute(insert(table), [{"id": n, "value": v} for n, v in enumerate(values)])
        with database.read() as s:
            assert [r.value for r in s.execute(select(table).order_by(table.c.id))] == values
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_member_is_taken_out_of_objects_only_and_nothing_else_is_refused(backend, tmp_path, request) -> None:
    """``JsonWithout`` (the expression of the evidence list's ``listed_facts`` column) takes
    ``document.text`` out where ``document`` is an object and leaves every other value as it is:
    PostgreSQL refuses to take a path out of a scalar or a list, and a generated column's error
    would refuse the write of the item's row itself."""
    from archive.sqljson import JsonWithout

    url = f"sqlite:///{tmp_path}/j.db" if backend == "sqlite" else request.getfixturevalue("own_pg_url")
    database = Database(Settings(data_dir=tmp_path, database_url=url))
    table = Table("facts", MetaData(), Column("id", Integer, primary_key=True), Column("value", JSON(none_as_null=False)),
                  Column("listed", JSON, Computed(JsonWithout(column("value"), "document", "text"),
                                                  persisted=backend == "postgresql")))
    table.create(database.engine)
    kept = [None, [1, 2], "text", 5, {"document": [1]}, {"document": "scanned"}, {"other": {"text": "x"}},
            {"document": {"pages": 2}}]
    try:
        with database.session() as s:
            s.execute(insert(table), [{"id": n, "value": v} for n, v in enumerate(kept)])
            s.execute(insert(table), [{"id": 99, "value": {"document": {"text": "询问笔录", "pages": 1}, "probe": {}}}])
        with database.read() as s:
            rows = {r.id: r.listed for r in s.execute(select(table.c.id, table.c.listed))}
        assert [rows[n] for n in range(len(kept))] == kept
        assert rows[99] == {"document": {"pages": 1}, "probe": {}}
    finally:
        database.dispose()
