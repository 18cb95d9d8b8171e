"""The data directory's disk fills up (an operator's bad day: hours of body-camera video
arriving at once). Nothing may crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.faults import fill, small_disk


def test_metrics_recorded_on_a_full_disk_do_not_kill_the_process(tmp_path: Path) -> None:
    """prometheus-client writes its per-process files through a memory map of a sparse file:
    on a full disk the first write to a page without a block was SIGBUS, and the process (an
    API process with every upload it was receiving) died on the spot. Recording a metric
    must never fail what it measures."""
    with small_disk(tmp_path / "disk", mib=1) as disk:
        fill(disk)
        script = (
            "from pathlib import Path; import sys; from archive import metrics\n"
            "metrics.configure(Path(sys.argv[1]))\n"
            "for i in range(200):\n"
            "    metrics.record_http(method='GET', route=f'/r{i}', status=200, seconds=0.01)\n"
            "    metrics.record_task(f't{i}', seconds=0.1, failed=False)\n"
            "print('alive')\n"
        )
        r = subprocess.run([sys.executable, "-c", script, str(disk / "metrics")], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert (r.returncode, r.stdout.strip()) == (0, "alive"), (r.returncode, r.stderr[-2000:])
        assert "could not record a metric" in r.stderr
        # The API's merge of every process's files still reads the directory.
        assert not [f for f in (disk / "metrics").glob("*.db") if f.stat().st_size == 0]
