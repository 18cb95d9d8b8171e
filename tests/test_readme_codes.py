"""Every error code the archive raises is documented in README.md's error table (or its
list of codes that name why background work failed): a client meeting a code can look it up."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _raised_codes() -> dict[str, str]:
    """Each literal ``code="..."`` passed in a call in the server's packages, and where."""
    found: dict[str, str] = {}
    for package in ("archive", "api", "ingest", "signing", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Call):
                    for keyword in node.keywords:
                        if keyword.arg == "code" and isinstance(keyword.value, ast.Constant) \
                                and isinstance(keyword.value.value, str):
                            found.setdefault(keyword.value.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_raised_code_is_in_the_readme():
    readme = (ROOT / "README.md").read_text("utf-8")
    codes = _raised_codes()
    assert len(codes) > 100  # the scan sees the archive's codes
    missing = {code: where for code, where in codes.items() if f"`{code}`" not in readme}
    assert not missing, f"codes raised but not in README.md's error table: {missing}"
