"""No debris from a killed worker: a scratch directory (a worker's copy of an original) whose
process died without cleaning up, however it died, is removed by the next sweep; one a
living process holds is never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from archive import scratch
from tests.conftest import ROOT

HOLDER = """
import sys, time
from archive.scratch import scratch_dir
with scratch_dir("work") as path:
    (path / "original.mp4").write_bytes(b"x" * 100_000)
    print(path, flush=True)
    time.sleep(600)
"""


def _holder(tmp: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "TMPDIR": str(tmp)})
    path = Path(process.stdout.readline().strip())
    process.stdout.close()
    return process, path


def _aged(path: Path) -> None:
    old = time.time() - scratch.YOUNG - 5
    os.utime(path, (old, old))


def test_a_killed_processs_scratch_is_swept_and_a_living_ones_is_kept(tmp_path):
    killed, left = _holder(tmp_path)
    living, held = _holder(tmp_path)
    try:
        assert left.parent == tmp_path and (left / "original.mp4").exists()
        killed.send_signal(signal.SIGKILL)  # no cleanup runs
        killed.wait(10)
        assert left.exists()
        young = scratch.sweep(tmp_path)
        assert young == 0 and left.exists()  # made within the minute: its process may be starting
        _aged(left)
        _aged(held)
        assert scratch.sweep(tmp_path) == 1
        assert not left.exists()
        assert (held / "original.mp4").exists()  # held by a living process
    finally:
        living.kill()
        living.wait(10)
    assert scratch.sweep(tmp_path) == 1 and not held.exists()


def test_a_scratch_directory_is_removed_when_its_block_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with scratch.scratch_dir("work") as path:
        (path / "copy").write_bytes(b"y")
        assert path.parent == tmp_path
    assert not path.exists()
    unrelated = tmp_path / "someone-else"
    unrelated.mkdir()
    _aged(unrelated)
    assert scratch.sweep(tmp_path) == 0 and unrelated.exists()
