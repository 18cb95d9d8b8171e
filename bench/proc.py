"""What Linux's /proc says of a process: its parent and the CPU it has used."""

from __future__ import annotations

import os
from pathlib import Path


def parent_and_cpu(pid: int) -> tuple[int, float]:
    """The parent's pid and the user + system CPU seconds (all threads) process ``pid`` has
    used so far; OSError once it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
