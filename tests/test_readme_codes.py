"""Every error code the archive raises is documented in README.md's error table (or its
list of codes that name why background work failed): a client meeting a code can look it up."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _raised_codes() -> dict[str, str]:
    """Each literal ``code="..."`` passed in a call in the server's packages, and where; also a
    literal passed by position to a function of theirs whose parameter there is ``code``
    (``_choice(StageDocumentRole, role, "document role", "invalid_document_role")``), and an error
    class's own ``code`` where it is raised without one."""
    trees = {path: ast.parse(path.read_text("utf-8"))
             for package in ("archive", "api", "ingest", "signing", "workers")
             for path in sorted((ROOT / package).rglob("*.py"))}
    code_at = {node.name: [a.arg for a in node.args.posonlyargs + node.args.args].index("code")
               for tree in trees.values() for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
               and "code" in [a.arg for a in node.args.posonlyargs + node.args.args]}
    # An error class's own code, answered when it is raised without one (``raise TimestampUnavailable(...)``).
    own_code = {node.name: item.value for tree in trees.values() for node in ast.walk(tree)
                if isinstance(node, ast.ClassDef) for item in node.body
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                and any(isinstance(t, ast.Name) and t.id == "code" for t in item.targets)}
    found: dict[str, str] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and not any(k.arg == "code" for k in node.exc.keywords):
                raised = getattr(node.exc.func, "id", None) or getattr(node.exc.func, "attr", None)
                if raised in own_code:
                    found.setdefault(own_code[raised].value, f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Call):
                given = [k.value for k in node.keywords if k.arg == "code"]
                called = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if called in code_at and len(node.args) > code_at[called]:
                    given.append(node.args[code_at[called]])
                for value in given:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        found.setdefault(value.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_raised_code_is_in_the_readme():
    readme = (ROOT / "README.md").read_text("utf-8")
    codes = _raised_codes()
    assert len(codes) > 100  # the scan sees the archive's codes
    missing = {code: where for code, where in codes.items() if f"`{code}`" not in readme}
    assert not missing, f"codes raised but not in README.md's error table: {missing}"
