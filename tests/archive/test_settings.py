"""Settings fail fast; the production configuration in docker-compose.yml is valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from archive.errors import ConfigurationError
from archive.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose_env(values: dict[str, str]) -> dict[str, str]:
    """The environment docker compose would give the API container, ${VAR} substituted."""
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = doc["services"]["api"]["environment"]

    def subst(text: str) -> str:
        def one(m: re.Match) -> str:
            name, op, default = m.group(1), m.group(2), m.group(3)
            if name in values:
                return values[name]
            if op == ":-":
                return default
            raise KeyError(name)

        return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, text)

    return {k: subst(str(v)) for k, v in env.items()}


def test_compose_production_settings_validate():
    env = compose_env({"POSTGRES_PASSWORD": "p", "EVIDENCE_S3_ACCESS_KEY": "a", "EVIDENCE_S3_SECRET_KEY": "s",
                       "EVIDENCE_TSA_URL": "https://tsa.example/tsr", "EVIDENCE_EXPORT_LINK_SECRET": "k" * 48})
    settings = Settings(**{k[len("EVIDENCE_"):].lower(): v for k, v in env.items()})
    assert settings.mode == "production" and settings.storage_backend == "s3"
    assert settings.resolved_database_url.startswith("postgresql://")
    assert not settings.is_embedded
    # Secrets never show in the settings' text form (logs).
    assert "'s'" not in repr(settings) and "password" not in str(settings.s3_secret_key)


def test_compose_has_no_default_secrets():
    with pytest.raises(KeyError):
        compose_env({})


def test_production_refuses_missing_servers():
    with pytest.raises(ConfigurationError, match="EVIDENCE_DATABASE_URL"):
        Settings(mode="production")
    with pytest.raises(ConfigurationError, match="EVIDENCE_BROKER_URL"):
        Settings(mode="production", database_url="postgresql://x/y", storage_backend="s3",
                 s3_endpoint="h:1", s3_access_key="a", s3_secret_key="b")


def test_embedded_default_layout(tmp_path):
    s = Settings(data_dir=tmp_path)
    assert s.is_embedded
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'evidence.db'}"
    assert s.resolved_storage_dir == tmp_path.resolve() / "objects"


def test_retention_classes_fail_fast(monkeypatch):
    monkeypatch.setenv("EVIDENCE_RETENTION_CLASSES", '{"permanent": null, "fixed_5y": 5}')
    assert Settings().retention_classes == {"permanent": None, "fixed_5y": 5}
    for classes, default, wrong in (
        ('{"permanent": null, "Bad Name": 5}', "permanent", "Bad Name"),
        ('{"permanent": null, "fixed_0y": 0}', "permanent", "years must be 1-1000"),
        ('{"fixed_10y": 10}', "permanent", "EVIDENCE_RETENTION_DEFAULT_CLASS"),
    ):
        monkeypatch.setenv("EVIDENCE_RETENTION_CLASSES", classes)
        monkeypatch.setenv("EVIDENCE_RETENTION_DEFAULT_CLASS", default)
        with pytest.raises(ValueError, match=wrong):
            Settings()
