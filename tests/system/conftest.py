"""Whole-system tests (load, fuzzing, killed processes) run on a stack of their own per
module, so the work they leave queued never delays the shared stack's tests, and theirs
never delays them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Stack, own_stack


@pytest.fixture(scope="module", params=["embedded", "services"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    with own_stack(request, tmp_path_factory, "own-stack") as s:
        yield s
