"""The recording start typed in the upload area is a wall time in the corps' zone: it is sent
with the offset that zone had at that moment, not today's (Europe/Berlin: +01:00 in winter,
+02:00 in summer), whatever the browser's own zone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from archive.models import EvidenceItem, Upload
from tests.browser.conftest import open_as
from tests.browser.test_upload import DROP, _case
from tests.conftest import Stack, own_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["embedded", "services"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    """The service with the corps in Berlin (a zone with daylight saving time)."""
    with own_stack(request, tmp_path_factory, "browser-zone", extra_env={"EVIDENCE_TIME_ZONE": "Europe/Berlin"}) as s:
        yield s


def test_a_typed_start_has_the_offset_of_its_own_season(browser, stack):
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="en", timezone_id="Asia/Shanghai")
    page.goto(f"/cases/{case['id']}")
    start = page.get_by_test_id("upload-recorded-start")
    start.fill("2026-01-15T10:30")
    page.evaluate(DROP, ["winter.txt", "recorded in January"])
    start.fill("2026-07-15T10:30:15")
    page.evaluate(DROP, ["summer.txt", "recorded in July"])
    page.get_by_test_id("upload-begin").click()
    page.locator("[data-testid=upload-row][data-state=done]").nth(1).wait_for()
    with stack.services.db.read() as s:
        sent = dict(s.execute(select(EvidenceItem.original_filename, Upload.params["recorded_start"].as_string())
                              .join(Upload, Upload.item_id == EvidenceItem.id)
                              .where(EvidenceItem.case_id == case["id"])).all())
    assert sent == {"winter.txt": "2026-01-15T10:30:00+01:00", "summer.txt": "2026-07-15T10:30:15+02:00"}


CHANGES = [
    ("", "Europe/Berlin", ""),
    ("2026-03-29T01:59:59", "Europe/Berlin", "2026-03-29T01:59:59+01:00"),
    # skipped by spring forward: the offset from before (the same moment as 03:30+02:00)
    ("2026-03-29T02:30", "Europe/Berlin", "2026-03-29T02:30:00+01:00"),
    ("2026-03-29T03:00", "Europe/Berlin", "2026-03-29T03:00:00+02:00"),
    # twice by falling back: the first of the two
    ("2026-10-25T02:30", "Europe/Berlin", "2026-10-25T02:30:00+02:00"),
    ("2026-10-25T03:00", "Europe/Berlin", "2026-10-25T03:00:00+01:00"),
    ("2026-01-15T10:00", "Australia/Sydney", "2026-01-15T10:00:00+11:00"),
    ("2026-07-15T10:00", "Australia/Sydney", "2026-07-15T10:00:00+10:00"),
    ("2026-07-15T10:00", "America/St_Johns", "2026-07-15T10:00:00-02:30"),
    ("2026-07-15T10:00", "Asia/Shanghai", "2026-07-15T10:00:00+08:00"),
    ("2026-07-15T10:00", "UTC", "2026-07-15T10:00:00+00:00"),
]
"""(typed wall time, zone, what is sent): around Berlin's changes and in zones of other kinds."""


def test_wall_times_at_the_changes_of_offset(browser, stack):
    officer = stack.user(role="officer", unit="unit-a")
    page = open_as(browser, stack, officer, lang="en", timezone_id="America/New_York")
    page.goto(f"/cases/{_case(stack, officer)['id']}")
    sent = page.evaluate("(cases) => cases.map(([local, zone]) => zonedIso(local, zone))", [c[:2] for c in CHANGES])
    assert list(zip([c[0] for c in CHANGES], [c[1] for c in CHANGES], sent)) == CHANGES
