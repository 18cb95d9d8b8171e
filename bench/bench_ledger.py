"""Time custody proofs, older tree heads and ``ledger verify`` at 10,000 and 100,000 entries
(1,000,000 with ``--big``) on SQLite and PostgreSQL, against a baseline measured in the
same run: one SELECT of every entry's hash.

The ledger is filled with bulk inserts of valid entries: :func:`archive.custody.ledger.new_entry`
and :func:`archive.custody.merkle.frontier_append_nodes` compute hashes and subtree nodes exactly
as ``ledger.append`` does, and a checkpoint is recorded every ``--checkpoint-every``
entries (a ``checkpoints`` row with the true root and canonical statement, and its
``checkpoint_sealed`` ledger entry). BENCH-ONLY: those checkpoints are NOT sealed (no
CAdES, no SM2), so the verify timing runs ``verify_checkpoint_chain`` with the
unchecked ``checkpoint_statement``: every check of ``evidence ledger verify`` except the
seals. The cost of one real seal check is timed separately and printed, so the seal
share of a real verify is (number of checkpoints) x (that time).

Run: .venv/bin/python bench/bench_ledger.py [--sizes 10000 100000] [--big] [--stacks sqlite postgresql]
PostgreSQL: 127.0.0.1:5432 as in tests/servers.py (a fresh database per size, dropped after).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text, update  # noqa: E402

from archive import db as archive_db  # noqa: E402
from archive.custody import ledger
from archive.custody import merkle
from archive.custody.checkpoints import (  # noqa: E402
    CHECKPOINT_ACTION, CHECKPOINT_FORMAT, checkpoint_record, checkpoint_sizes, checkpoint_statement,
    verify_checkpoint_chain,
)
from archive.seals.manifests import canonical_bytes  # noqa: E402
from archive.seals.sealer import Sealer  # noqa: E402
from archive.db import Database  # noqa: E402
from evidence_verify.ledger_format import canonical_json  # noqa: E402
from archive.models import Checkpoint, LedgerEntry, LedgerLock, LedgerNode  # noqa: E402
from archive.settings import Settings  # noqa: E402

TARGET_MS = 20.0
TARGET_VERIFY = 50_000.0
_TIME = "2026-12-02T00:00:00.000000Z"


def fill(database: Database, entries: int, *, checkpoint_every: int, batch: int = 10_000) -> int:
    """Bulk-load ``entries`` valid entries (checkpoint records included); return the checkpoint count."""
    frontier: list[bytes] = []
    prev, size, checkpoints = ledger.GENESIS, 0, 0
    previous_cp: Checkpoint | None = None
    since = 0
    with database.session() as s:
        while size < entries:
            rows, nodes, cps = [], [], []
            while size < entries and len(rows) < batch:
                if since == checkpoint_every and size + 1 < entries:
                    # A checkpoint of the tree so far, then its record as the next entry.
                    root = merkle.frontier_root(frontier).hex()
                    checkpoints += 1
                    statement = canonical_bytes({
                        "format": CHECKPOINT_FORMAT, "tree_size": size, "root_hash": root,
                        "last_entry_hash": prev, "time": _TIME,
                        "previous": None if previous_cp is None else {
                            "id": previous_cp.id, "tree_size": previous_cp.tree_size,
                            "root_hash": previous_cp.root_hash},
                    }).decode()
                    cp = Checkpoint(id=checkpoints, tree_size=size, root_hash=root, statement=statement,
                                    cades=b"bench: not sealed", sm2={})
                    cps.append({"id": cp.id, "tree_size": size, "root_hash": root, "statement": statement,
                                "cades": cp.cades, "sm2": cp.sm2})
                    action, details = CHECKPOINT_ACTION, checkpoint_record(cp, previous_cp)
                    previous_cp, since = cp, 0
                else:
                    action, details = "note", {"i": size + 1}
                    since += 1
                row, leaf = ledger.new_entry(seq=size + 1, prev_hash=prev, recorded_at=_TIME, actor="bench",
                                             action=action, details=canonical_json(details))
                frontier, made = merkle.frontier_append_nodes(frontier, size, leaf)
                rows.append(row)
                nodes.extend(ledger.node_rows(made))
                prev, size = row["entry_hash"], size + 1
            if cps:
                s.execute(insert(Checkpoint), cps)
            s.execute(insert(LedgerEntry), rows)
            s.execute(insert(LedgerNode), nodes)
        s.execute(update(LedgerLock).where(LedgerLock.id == 1).values(size=size, frontier=[h.hex() for h in frontier]))
    return checkpoints


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def measure(database: Database, entries: int, *, checkpoint_every: int, repeat: int) -> dict[str, float]:
    """Fill, then time every operation; seconds (and rates) by name."""
    t0 = time.perf_counter()
    count = fill(database, entries, checkpoint_every=checkpoint_every)
    out: dict[str, float] = {"fill_s": time.perf_counter() - t0, "checkpoints": count}
    rng = random.Random(entries)
    with database.snapshot() as s:
        out["baseline_s"] = timed(lambda: s.execute(select(LedgerEntry.entry_hash)).all(), 3)

        def inclusion() -> None:
            n = rng.randint(1, entries)
            ledger.inclusion(s, seq=rng.randint(1, n), tree_size=n)

        def consistency() -> None:
            n = rng.randint(1, entries)
            ledger.consistency(s, old_size=rng.randint(0, n), new_size=n)

        out["inclusion_s"] = timed(inclusion, repeat)
        out["consistency_s"] = timed(consistency, repeat)
        out["tree_head_s"] = timed(lambda: ledger.tree_head(s, tree_size=rng.randint(0, entries - 1)), repeat)
        t0 = time.perf_counter()
        report = ledger.verify(s, at_sizes=checkpoint_sizes(s))
        out["ledger_pass_s"] = time.perf_counter() - t0
        checked = verify_checkpoint_chain(s, ledger_report=report, statement_of=checkpoint_statement)
        assert checked.count == count, (checked.count, count)
        out["verify_s"] = time.perf_counter() - t0
    return out


def seal_check_seconds(workdir: Path) -> float:
    """Median time of one real checkpoint seal check (CAdES-B-T and SM2 over a statement)."""
    sealer = Sealer(Settings(data_dir=workdir / "seal"))
    data = b'{"format":"bench"}'
    bundle = sealer.seal(data)
    return timed(lambda: sealer.verify_seal(data, bundle), 5)


def open_stack(stack: str, workdir: Path, entries: int) -> tuple[Database, Callable[[], None]]:
    """A fresh, migrated database of this kind, and how to remove it."""
    if stack == "sqlite":
        settings = Settings(data_dir=workdir / f"sqlite-{entries}")
        drop = lambda: None  # noqa: E731 (the temporary directory goes with the run)
    else:
        from tests.servers import create_pg_database, drop_pg_database

        url = create_pg_database()
        settings = Settings(data_dir=workdir / f"pg-{entries}", database_url=url)
        drop = lambda: drop_pg_database(url)  # noqa: E731
    archive_db.upgrade(settings)
    return Database(settings), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--big", action="store_true", help="also 1,000,000 entries")
    parser.add_argument("--stacks", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50, help="calls per proof timing (median)")
    args = parser.parse_args()
    sizes = [*args.sizes, *([1_000_000] if args.big else [])]
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        workdir = Path(tmp)
        seal_s = seal_check_seconds(workdir)
        print(f"one real checkpoint seal check (CAdES-B-T + SM2): {seal_s * 1000:.1f} ms "
              f"(not in the verify figures below: their checkpoints are unsealed, bench-only)")
        print(f"{'stack':<10} {'entries':>9} {'cps':>5} {'fill s':>7} {'baseline s':>10} {'inclusion ms':>12} "
              f"{'consist. ms':>11} {'old head ms':>11} {'verify s':>8} {'entries/s':>9} {'verify/base':>11} "
              f"{'+seals s':>8}")
        for stack in args.stacks:
            for entries in sizes:
                database, drop = open_stack(stack, workdir, entries)
                try:
                    r = measure(database, entries, checkpoint_every=args.checkpoint_every, repeat=args.repeat)
                finally:
                    database.dispose()
                    drop()
                rate = entries / r["verify_s"]
                flags = []
                for name in ("inclusion_s", "consistency_s", "tree_head_s"):
                    if r[name] * 1000 > TARGET_MS:
                        flags.append(f"{name} over {TARGET_MS:.0f} ms")
                if entries >= 1_000_000 and rate < TARGET_VERIFY:
                    flags.append(f"verify under {TARGET_VERIFY:,.0f}/s")
                print(f"{stack:<10} {entries:>9,} {int(r['checkpoints']):>5} {r['fill_s']:>7.1f} "
                      f"{r['baseline_s']:>10.3f} {r['inclusion_s'] * 1000:>12.2f} {r['consistency_s'] * 1000:>11.2f} "
                      f"{r['tree_head_s'] * 1000:>11.2f} {r['verify_s']:>8.2f} {rate:>9,.0f} "
                      f"{r['verify_s'] / r['baseline_s']:>10.1f}x {r['checkpoints'] * seal_s:>8.1f}"
                      + (f"  MISSED: {'; '.join(flags)}" if flags else ""), flush=True)
        print(f"targets: proofs and older heads under {TARGET_MS:.0f} ms at every size; verify >= "
              f"{TARGET_VERIFY:,.0f} entries/s at 1,000,000 (without seals). 'verify' = one ledger pass "
              "(chain, frontier, every stored node, root at each checkpoint) + checkpoint records, "
              "links and consistency proofs; '+seals s' = checkpoints x one real seal check.")


if __name__ == "__main__":
    main()
