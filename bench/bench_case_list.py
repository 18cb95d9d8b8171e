"""A page of a case's evidence list in a large case against the same page in a small one.

Builds an archive in a temporary folder (SQLite; ``--database-url`` for PostgreSQL) with two
cases of one unit: a small one of 200 items and a large one of ``--items`` (100,000 by
default), their rows written straight into the database as body-camera segments already
sealed (what probing and sealing record for them), then times ``GET
/api/v1/cases/{id}/evidence?limit=200`` in process (no network), the whole request through
the application: the first page, and the page after the item nine tenths of the way in
(``after=``). The baseline is the same page of the small case, in the same run: a page costs
what it shows, not what the case holds, so the target is a ratio under 1.5 for both.

Run: .venv/bin/python bench/bench_case_list.py [--items 100000] [--runs 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from archive import db as archive_db  # noqa: E402
from archive.cases.service import create_case  # noqa: E402
from archive.identity.users import add_user  # noqa: E402
from archive.models import EvidenceItem, EvidenceKind, new_id  # noqa: E402
from archive.settings import Settings  # noqa: E402
from bench.bench_case_page import FACTS, T0  # noqa: E402

PAGE = 200
RATIO_TARGET = 1.5
CHUNK = 5_000


def _fill(app, case_id: str, vault: tuple[str, str], officer_id: str, items: int) -> None:  # type: ignore[no-untyped-def]
    """``items`` sealed body-camera segments in the case, written in chunks of rows."""
    vault_id, vault_name = vault
    for start in range(0, items, CHUNK):
        rows = []
        for i in range(start, min(items, start + CHUNK)):
            digest = hashlib.sha256(f"{case_id} {i}".encode()).hexdigest()
            rows.append({
                "id": new_id(), "case_id": case_id, "vault_id": vault_id, "kind": EvidenceKind.bodycam_video,
                "original_filename": f"CAM-{i % 8:02d}_{i:06d}.mp4", "media_type": "video/mp4",
                "size": 50_000_000 + i, "sha256": digest, "sm3": digest,
                "storage_key": f"{vault_name}/originals/{i}", "uploaded_by": officer_id,
                "device_id": f"CAM-{i % 8:02d}", "recorded_start": T0 + timedelta(minutes=5 * i),
                "received_at": T0 + timedelta(seconds=i), "status": "processed", "flags": [], "details": {},
                "processing": {step: {"state": "done"} for step in ("sm3", "probe", "packets", "continuity", "seal")},
                "seal_status": "sealed", "media_facts": FACTS,
            })
        with app.state.services.db.session() as s:
            s.execute(insert(EvidenceItem), rows)
        print(f"\r  {min(items, start + CHUNK):,} of {items:,} items written", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def _time(client: TestClient, path: str, runs: int) -> float:
    """Median milliseconds of ``runs`` reads of ``path``, each answered whole with 200."""
    timings = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        r = client.get(path)
        timings.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200 and len(r.json()) == PAGE, (r.status_code, r.text[:300])
    return statistics.median(timings[1:])  # the first warms the statement caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-case-list-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=args.database_url)
        archive_db.upgrade(settings)
        app = create_app(settings)
        services = app.state.services
        cases = {}
        with services.db.session() as s:
            officer, token = add_user(s, name="bench-officer", unit="bench", role="officer")
            for label in ("small", "large"):
                case = create_case(s, store=services.store, user=officer, case_number=f"LIST-{label}", title=label)
                cases[label] = (case.id, (case.vault.id, case.vault.name))
            officer_id = officer.id
        for label, items in (("small", PAGE * 2), ("large", args.items)):
            _fill(app, cases[label][0], cases[label][1], officer_id, items)
        with services.db.session() as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("ANALYZE evidence_items"))  # as autovacuum would, after a bulk load
        client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
        print(f"== {settings.resolved_database_url.split(':', 1)[0]}: a page of {PAGE} items, median of {args.runs} "
              f"reads in process; small case {PAGE * 2:,} items, large case {args.items:,}")
        for what, share in (("first page", 0.0), ("page after 9/10", 0.9)):
            took = {}
            for label, items in (("small", PAGE * 2), ("large", args.items)):
                case_id = cases[label][0]
                path = f"/api/v1/cases/{case_id}/evidence?limit={PAGE}"
                if share:
                    with services.db.read() as s:
                        mark = s.execute(select(EvidenceItem.id).where(EvidenceItem.case_id == case_id)
                                         .order_by(EvidenceItem.received_at, EvidenceItem.id)
                                         .offset(int(items * share) - PAGE).limit(1)).scalar_one()
                    path += f"&after={mark}"
                took[label] = _time(client, path, args.runs)
            ratio = took["large"] / took["small"]
            print(f"{what:<16} small {took['small']:7.1f} ms  large {took['large']:7.1f} ms  ratio {ratio:.2f} "
                  f"(target < {RATIO_TARGET}: {'met' if ratio < RATIO_TARGET else 'NOT met'})", flush=True)
        services.db.dispose()


if __name__ == "__main__":
    main()
