"""The embedded default's queue folder under a producer and a consumer racing: every message
arrives whole, and a message cut short (a power loss) is skipped, not fatal to the worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.settings import Settings
from workers.celery import make_celery

MESSAGES = 1000


def _channel(data_dir: Path):  # type: ignore[no-untyped-def]
    connection = make_celery(Settings(data_dir=data_dir)).connection_for_write()
    return connection, connection.default_channel


def _produce(data_dir: str, count: int) -> None:
    connection, producer = _channel(Path(data_dir))
    for n in range(count):
        producer._put("work", {"body": "x" * 200_000, "n": n})
    connection.release()


@pytest.mark.slow  # producer processes racing a consumer for seconds
def test_consumer_racing_producers_only_ever_sees_whole_messages(tmp_path):
    """Two producer processes (the API and a worker) and a consumer polling without pause."""
    import multiprocessing

    connection, consumer = _channel(tmp_path)
    producers = [multiprocessing.get_context("spawn").Process(target=_produce, args=(str(tmp_path), MESSAGES))
                 for _ in range(2)]
    got, failures = [], []
    for p in producers:
        p.start()
    try:
        while len(got) < 2 * MESSAGES and not failures:
            try:
                got.append(consumer._get("work")["n"])
            except Exception as exc:  # noqa: BLE001 - Empty while the producers catch up; anything else fails
                if type(exc).__name__ != "Empty":
                    failures.append(exc)
    finally:
        for p in producers:
            p.join(60)
        connection.release()
    assert failures == []
    assert sorted(got) == sorted(list(range(MESSAGES)) * 2)


def test_a_message_cut_short_is_skipped(tmp_path):
    connection, channel = _channel(tmp_path)
    try:
        folder = tmp_path / "queue" / "messages"
        cut = folder / "0_00000000-0000-0000-0000-000000000000.work.msg"  # listed first
        cut.write_bytes(b'{"body": "cut sh')
        channel._put("work", {"n": 1})
        assert channel._get("work") == {"n": 1}  # the cut message was taken off and skipped (logged)
        assert not cut.exists() and list(folder.iterdir()) == []
    finally:
        connection.release()
