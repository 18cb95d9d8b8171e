"""schemathesis against the live /openapi.json of each stack: it must find nothing.

It runs schemathesis's own runner (``python -m schemathesis.cli run``, the documented
interface) with every check and every phase — examples, coverage (boundary and negative
values), fuzzing and stateful sequences (links inferred from the schema: create, then use
or read back; use-after-free, resource availability) — as an officer and as an admin.
Bounded for a 2-core machine: a few examples per operation and a time budget.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")
"""Operations left out, and statuses allowed beyond the defaults, each with its reason."""


@pytest.mark.parametrize("role", ["officer", "admin"])
def test_schemathesis_finds_nothing(stack, role, tmp_path):
    token = stack.user(role=role, unit="unit-a")
    with stack.client(token) as c:
        # Something to read back, so the read operations answer 200 as well as 404.
        r = c.post("/api/v1/cases", json={"case_number": f"ST-{uuid.uuid4().hex[:8]}", "title": "schemathesis"})
        assert r.status_code in (201, 403), r.text
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{stack.url}/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", "5", "--max-time", "30", "--seed", "20260301",
        "--generation-database", "none", "--request-timeout", "30", "--workers", "1",
        "--no-color", "--warnings", "off",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
