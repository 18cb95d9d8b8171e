"""The offline verifier is its own small distribution: what it may depend on and import.

Courts install it alone (``pip install ./verifier``), so it must pull no web framework,
database or queue package, and import nothing of the server.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "verifier"
PACKAGE = VERIFIER / "evidence_verify"

FORBIDDEN = {
    # web frameworks and servers
    "fastapi", "starlette", "uvicorn", "flask", "django", "aiohttp", "tornado", "python-multipart", "jinja2", "authlib",
    # databases
    "sqlalchemy", "alembic", "psycopg", "psycopg2", "psycopg-binary",
    # queues, object stores, server settings
    "celery", "kombu", "redis", "minio", "boto3", "botocore", "pydantic-settings", "limits", "tuspy",
    # the server itself
    "evidence-archive",
}
"""Distributions the verifier must never pull in, directly or through another package."""

SERVER_PACKAGES = {"archive", "ingest", "api", "workers", "signing"}
# tongsuopy: the optional "fast" extra (OpenSSL's SM2); every module works without it.
ALLOWED_IMPORTS = {"asn1crypto", "cryptography", "gmssl", "pyhanko", "pyhanko_certvalidator", "rich", "tongsuopy"}
"""Third-party packages the verifier's modules may import (besides the standard library)."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> list[Requirement]:
    project = tomllib.loads((VERIFIER / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the requirements pull in, as installed here (markers evaluated, no extras)."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = _normal(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is required but not installed here: reinstall the verifier "
                        "(pip install -e ./verifier) so its dependencies are checked as installed")
        todo.extend(Requirement(raw) for raw in requires)
    return seen


def test_declared_dependencies_are_only_for_verification() -> None:
    names = {_normal(r.name) for r in _declared()}
    assert names == {"cryptography", "asn1crypto", "gmssl", "pyhanko", "pyhanko-certvalidator", "rich", "tzdata"}


def test_no_web_database_or_queue_package_is_pulled_in() -> None:
    pulled = _closure(_declared())
    assert not pulled & FORBIDDEN, sorted(pulled & FORBIDDEN)


def test_modules_import_nothing_of_the_server() -> None:
    stdlib = set(sys.stdlib_module_names)
    for module in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text(), filename=str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                tops = [(node.module or "").split(".")[0]]
            else:
                continue
            for top in tops:
                assert top not in SERVER_PACKAGES, f"{module.name} imports {top}"
                assert top in stdlib or top in ALLOWED_IMPORTS or top == "__future__", f"{module.name} imports {top}"


def test_server_modules_do_not_redefine_the_export_format() -> None:
    """The writer takes the format's names from the verifier, never a second copy."""
    for path in (ROOT / "archive").rglob("*.py"):
        text = path.read_text()
        assert '"evidence-export/1"' not in text, path
        assert "BagIt-Version: 1.0" not in text, path
    assert not (ROOT / "archive" / "custody" / "ledger_format.py").exists()


@pytest.mark.slow
def test_fresh_venv_installs_the_verifier_alone_quickly(tmp_path) -> None:
    """The package the archive serves a court (``/api/v1/trust/evidence-verifier.tar.gz``, what
    the court page and every certificate point to) installs alone in a fresh environment."""
    from api.routes.trust import verifier_package

    name, data = verifier_package()
    assert verifier_package()[1] == data  # the same bytes each time
    package = tmp_path / name
    package.write_bytes(data)
    venv = tmp_path / "vv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = venv / "bin" / "pip"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    started = time.monotonic()
    subprocess.run([str(pip), "install", "-q", "--disable-pip-version-check", str(package)],
                   check=True, timeout=300, env=env, cwd=tmp_path)
    took = time.monotonic() - started
    listed = subprocess.run([str(pip), "list", "--format=freeze", "--disable-pip-version-check"],
                            check=True, capture_output=True, text=True, env=env).stdout
    installed = {_normal(line.split("==")[0]) for line in listed.splitlines() if "==" in line}
    assert "evidence-verifier" in installed
    assert not installed & FORBIDDEN, sorted(installed & FORBIDDEN)
    # The aim is under 20 s on an idle machine; the bound leaves room for a loaded CI runner.
    assert took < 60, f"pip install {name} took {took:.1f} s"
    help_text = subprocess.run([str(venv / "bin" / "evidence-verify"), "--help"], check=True,
                               capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert "--trust" in help_text and "--tz" in help_text
    # No zone database on the machine (PYTHONTZPATH empty hides /usr/share/zoneinfo): the
    # report's zones still come from the tzdata package, offline.
    shown = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from evidence_verify.localtime import local_time, zone; "
                            "print(local_time('2026-03-01T10:00:00Z', zone('Asia/Shanghai')), "
                            "local_time('2026-07-01T10:00:00Z', zone('Europe/Berlin')))"],
                           check=True, capture_output=True, text=True, env={**env, "PYTHONTZPATH": ""},
                           cwd=tmp_path).stdout
    assert shown.split() == ["2026-03-01", "18:00:00", "+08:00", "2026-07-01", "12:00:00", "+02:00"], shown
