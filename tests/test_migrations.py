"""The migrations and the models describe one schema: autogenerate finds nothing to do.

A model that Alembic's environment does not import (as ``continuity_state`` once was)
would be dropped by the next ``alembic revision --autogenerate``; a migration that
builds a table differently from its model leaves the two to drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from archive.db import MODEL_MODULES, alembic_config, compare_type, make_engine, model_metadata
from tests.servers import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind, brought to the newest revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'schema.db'}"
    else:
        url = create_pg_database()
    try:
        command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        if request.param == "postgres":
            drop_pg_database(url)


def test_models_match_the_migrated_schema(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": compare_type})
            differences = compare_metadata(context, model_metadata())
    finally:
        engine.dispose()
    assert differences == []


def test_every_model_module_is_seen_by_the_migrations() -> None:
    """Each module that declares a table is in the list Alembic's environment imports."""
    declaring = set()
    for package in ("archive", "ingest", "workers", "api"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"^class \w+\(Base\):", path.read_text(encoding="utf-8"), re.MULTILINE):
                declaring.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert declaring == set(MODEL_MODULES)
    assert "continuity_state" in model_metadata().tables


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_case_life_revision_gives_existing_cases_a_stage_and_a_handler(kind: str, tmp_path: Path) -> None:
    """Revision 0012: cases get ``filed`` (``closed`` when their status is closed); creators handle them."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}" if kind == "sqlite" else create_pg_database()
    try:
        command.upgrade(alembic_config(url), "0011")
        engine = make_engine(url)
        t = "2026-01-01T00:00:00+00:00"
        with engine.begin() as c:
            c.execute(text("INSERT INTO units (id, name, created_at) VALUES ('u1', 'team', :t)"), {"t": t})
            c.execute(text("INSERT INTO users (id, name, role, unit_id, token_hash, active, created_at) "
                           "VALUES ('p1', 'li', 'officer', 'u1', :h, :a, :t)"), {"h": "0" * 64, "a": True, "t": t})
            for case_id, status in (("c1", "filed"), ("c2", "closed"), ("c3", "decided")):
                c.execute(text("INSERT INTO cases (id, case_number, title, unit_id, status, created_by, created_at, flags) "
                               "VALUES (:i, :i, 'old', 'u1', :s, 'p1', :t, '[]')"), {"i": case_id, "s": status, "t": t})
        command.upgrade(alembic_config(url), "head")
        with engine.connect() as c:
            stages = dict(c.execute(text("SELECT id, stage FROM cases")).all())
            handlers = sorted(c.execute(text("SELECT case_id, user_id FROM case_handlers")).all())
        engine.dispose()
        assert stages == {"c1": "filed", "c2": "closed", "c3": "filed"}
        assert handlers == [("c1", "p1"), ("c2", "p1"), ("c3", "p1")]
    finally:
        if kind == "postgres":
            drop_pg_database(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_case_numbers_become_unique_per_unit_on_a_database_holding_cases(kind: str, tmp_path: Path) -> None:
    """Revision 0019: existing cases stay as they were; afterwards two units may use one number,
    one unit still may not; down again while no number is shared."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    url = f"sqlite:///{tmp_path / 'old.db'}" if kind == "sqlite" else create_pg_database()
    t = "2026-01-01T00:00:00+00:00"
    case = ("INSERT INTO cases (id, case_number, title, unit_id, status, stage, created_by, created_at, flags) "
            "VALUES (:i, :n, 'old', :u, 'filed', 'filed', 'p1', :t, '[]')")
    try:
        command.upgrade(alembic_config(url), "0018")
        engine = make_engine(url)
        with engine.begin() as c:
            for unit in ("u1", "u2"):
                c.execute(text("INSERT INTO units (id, name, created_at) VALUES (:u, :u, :t)"), {"u": unit, "t": t})
            c.execute(text("INSERT INTO users (id, name, role, unit_id, token_hash, active, created_at) "
                           "VALUES ('p1', 'li', 'officer', 'u1', :h, :a, :t)"), {"h": "0" * 64, "a": True, "t": t})
            c.execute(text(case), {"i": "c1", "n": "2026-0001", "u": "u1", "t": t})
            c.execute(text(case), {"i": "c2", "n": "2026-0002", "u": "u2", "t": t})
        command.upgrade(alembic_config(url), "head")
        with engine.begin() as c:
            assert sorted(c.execute(text("SELECT id, case_number, unit_id FROM cases")).all()) == [
                ("c1", "2026-0001", "u1"), ("c2", "2026-0002", "u2")]
            c.execute(text(case), {"i": "c3", "n": "2026-0001", "u": "u2", "t": t})  # another unit: allowed
        with pytest.raises(IntegrityError), engine.begin() as c:
            c.execute(text(case), {"i": "c4", "n": "2026-0001", "u": "u1", "t": t})  # the same unit: refused
        with engine.begin() as c:
            c.execute(text("DELETE FROM cases WHERE id = 'c3'"))
        command.downgrade(alembic_config(url), "0018")
        with pytest.raises(IntegrityError), engine.begin() as c:
            c.execute(text(case), {"i": "c5", "n": "2026-0002", "u": "u1", "t": t})  # unique across units again
        engine.dispose()
    finally:
        if kind == "postgres":
            drop_pg_database(url)
