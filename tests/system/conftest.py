"""Whole-system tests (load, fuzzing, killed processes) run on a stack of their own per
module, so the work they leave queued never delays the shared stack's tests, and theirs
never delays them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Stack, running_stack
from tests.servers import create_pg_database, drop_pg_database


@pytest.fixture(scope="module", params=["embedded", "services"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    database_url = create_pg_database() if request.param == "services" else None
    try:
        with running_stack(request, request.param, tmp_path_factory.mktemp(f"own-stack-{request.param}"),
                           database_url=database_url) as s:
            yield s
    finally:
        if database_url:
            drop_pg_database(database_url)
