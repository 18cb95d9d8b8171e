"""Server time of the case page for a case with 200 items, 1,000 custody entries and 20 gaps.

Builds an embedded archive in a temporary folder (SQLite; ``--database-url`` for PostgreSQL),
signs a reviewer in, and times ``GET /cases/{id}`` in process (no network): the whole request
through the application, database reads and template rendering included. Target: < 300 ms.

Run: .venv/bin/python bench/bench_case_page.py [--items 200] [--entries 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import SESSION_COOKIE
from api.pages.cases import ITEMS_PAGE
from archive import db as archive_db
from archive.cases.service import create_case
from archive.continuity.models import Gap
from archive.custody import ledger
from archive.identity import signin
from archive.identity.users import add_user
from archive.models import EvidenceItem, EvidenceKind, User
from archive.settings import Settings

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
FACTS = {
    "container": "mov,mp4,m4a,3gp,3g2,mj2", "duration_seconds": 290.0, "bit_rate": 8_000_000,
    "streams": [{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
                 "avg_frame_rate": "30/1"}, {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 2}],
    "packet_scan": {"stream": 0, "packet_count": 8700, "media_duration": 290.0, "gaps": []},
}
"""What probing and the packet scan record for a 290 s body-camera segment (so the page's
timeline places every item, as it would in a real case)."""


def populate(app, *, items: int, entries: int, gaps: int) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A case with ``items`` sealed items, ``entries`` custody entries and ``gaps`` gaps;
    returns (case id, a reviewer's session cookie)."""
    services = app.state.services
    with services.db.session() as s:
        officer, _ = add_user(s, name="bench-officer-" + uuid.uuid4().hex[:6], unit="bench", role="officer")
        reviewer, _ = add_user(s, name="bench-reviewer-" + uuid.uuid4().hex[:6], unit="bench", role="reviewer")
        case = create_case(s, store=services.store, user=officer, case_number="BENCH-" + uuid.uuid4().hex[:6], title="Bench case")
        rows = []
        for i in range(items):
            digest = hashlib.sha256(f"item {i}".encode()).hexdigest()
            rows.append(EvidenceItem(
                case_id=case.id, vault_id=case.vault.id, kind=EvidenceKind.bodycam_video,
                original_filename=f"CAM-{i % 8:02d}_{i:04d}.mp4", media_type="video/mp4", size=50_000_000 + i,
                sha256=digest, sm3=digest, storage_key=f"{case.vault.name}/originals/{i}", uploaded_by=officer.id,
                device_id=f"CAM-{i % 8:02d}", recorded_start=T0 + timedelta(minutes=5 * i),
                processing={step: {"state": "done"} for step in ("sm3", "probe", "packets", "derive", "continuity", "seal")},
                seal_status="sealed", media_facts=FACTS,
            ))
        s.add_all(rows)
        s.flush()
        for g in range(gaps):
            s.add(Gap(case_id=case.id, key=f"k{g}", level="between_segments", device=f"CAM-{g % 8:02d}",
                      item_id=rows[g + 1].id, previous_item_id=rows[g].id, start=T0 + timedelta(minutes=5 * g, seconds=290),
                      end=T0 + timedelta(minutes=5 * g + 5), duration_seconds=10.0, cause="missing segment"))
        case_id, reviewer_id = case.id, reviewer.id
    with services.db.session() as s:
        for n in range(entries):
            ledger.append(s, actor="user:bench-officer", action="content_read", case_id=case_id,
                          item_id=rows[n % items].id, details={"purpose": "bench", "n": n})
    with services.db.session() as s:
        secret = signin.start_session(s, user=s.get(User, reviewer_id), ttl_seconds=3600, second_factor=True)
    return case_id, secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--gaps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-case-page-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=args.database_url)
        archive_db.upgrade(settings)
        app = create_app(settings)
        case_id, secret = populate(app, items=args.items, entries=args.entries, gaps=args.gaps)
        client = TestClient(app, cookies={SESSION_COOKIE: secret})
        first = client.get(f"/cases/{case_id}")
        shown = min(args.items, ITEMS_PAGE)  # a larger case is shown a page of items at a time
        assert first.status_code == 200 and first.text.count('data-testid="item-row"') == shown, first.status_code
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            r = client.get(f"/cases/{case_id}")
            timings.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200
        median, best, worst = statistics.median(timings), min(timings), max(timings)
        print(f"case page, {args.items} items (page shows {shown}), {args.entries} custody entries (page shows the newest 200), "
              f"{args.gaps} gaps: median {median:.0f} ms, best {best:.0f} ms, worst {worst:.0f} ms over {args.runs} runs, "
              f"{len(first.content) / 1024:.0f} KiB; target < 300 ms: {'met' if median < 300 else 'NOT met'}")
        app.state.services.db.dispose()


if __name__ == "__main__":
    main()
