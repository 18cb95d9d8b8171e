"""Typed settings, read once at each entry point and passed down.

With nothing set the service runs in the *embedded default*: SQLite and a local object
directory under ``EVIDENCE_DATA_DIR``, a filesystem Celery broker and a development PKI.
``EVIDENCE_MODE=production`` refuses to start unless every server and secret is given.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from archive.errors import ConfigurationError
from archive.timefmt import DEFAULT_TIME_ZONE, check_zone

CERTIFICATE_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
"""WenQuanYi Zen Hei (Debian's fonts-wqy-zenhei, installed by scripts/setup.sh and the
Dockerfile): Chinese and Latin in one face."""

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything configurable, from ``EVIDENCE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="EVIDENCE_", extra="ignore", frozen=True)

    mode: Literal["development", "production"] = "development"
    data_dir: Path = Path("./evidence-data")

    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///DATA_DIR/evidence.db``."""

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    """Local object directory; default ``DATA_DIR/objects``."""
    storage_direct_io: bool = True
    """Write originals to the local object directory with direct I/O (O_DIRECT), past
    the page cache; used only where the filesystem has it."""
    s3_endpoint: str | None = None
    """host:port of the S3 server (MinIO in production)."""
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_secure: bool = True
    s3_region: str | None = None
    s3_bucket: str = "evidence-vaults"
    s3_part_size: int = Field(default=8 * MiB, ge=5 * MiB, le=512 * MiB)
    """Part size of multipart uploads; an object has at most 10,000 parts (78 GiB at 8 MiB)."""
    api_processes: int | None = Field(default=None, ge=1, le=64)
    """API server processes of ``evidence serve`` (default: one per core, at most 8, on PostgreSQL
    with Redis; one on SQLite, whose one writer they would queue behind)."""
    database_connections: int = Field(default=20, ge=2, le=1000)
    """Most connections to PostgreSQL one process holds at once (its pool; requests beyond it
    wait for one, up to 15 s, then 503). ``evidence serve`` lowers it so that all its processes
    together stay within the server's ``max_connections``."""
    api_requests_at_work: int = Field(default=3, ge=1, le=1000)
    """Most requests one API process works on at once (never more than ``database_connections``);
    the others wait their turn in arrival order (:mod:`api.admission`). A request's work holds
    the interpreter's lock between its database round trips: three keep one core busy while
    the database answers. Measured with ``bench/bench_reads.py`` (PostgreSQL, 2 cores, two
    processes, 100 clients): case reads 638/s at 3, 488/s at 4 and 385/s at 20."""
    s3_parallel_parts: int = Field(default=4, ge=1, le=16)
    """Parts of one upload sent to S3 at once while the next is received (memory: this many
    parts plus the one being received, which is held twice while it is cut from the stream)."""
    retention_days: int = Field(default=30 * 365 + 7, ge=1)
    """COMPLIANCE retention put on every original (default 30 years)."""
    retention_classes: dict[str, int | None] = Field(
        default_factory=lambda: {"permanent": None, "fixed_30y": 30, "fixed_10y": 10}
    )
    """Retention classes of case files: name -> years kept after closing (counted from 1
    January of the year after it, as archives count), None for permanent (永久, 定期30年,
    定期10年). JSON in ``EVIDENCE_RETENTION_CLASSES``."""
    retention_default_class: str = "permanent"
    """The class of a case no administrator has classed (evidence is kept permanently)."""

    broker_url: str | None = None
    """Celery broker; default a filesystem queue under DATA_DIR (no server needed)."""
    task_always_eager: bool = False
    queue_name: str = "evidence"
    """Celery queue the API sends to and workers consume."""
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    """Seconds a task taken by a worker that died stays invisible before Redis redelivers it."""

    keys_dir: Path | None = None
    """Development PKI and seal keys; default ``DATA_DIR/keys``."""
    tsa_url: str | None = None
    """External RFC 3161 TSA; default the built-in one (development only)."""
    tsa_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    """How long a seal waits for the time-stamping authority's answer; past it the seal fails
    as an outage and its work is retried."""

    # Seal keys. Nothing set in development: a development PKI under keys_dir is
    # created on first use with a loud warning. Production sets either the key files
    # or the PKCS#11 token, plus the trust roots and the SM2 key.
    seal_key: Path | None = None
    """E-seal private key (PEM/DER) or PKCS#12 file."""
    seal_key_passphrase: SecretStr | None = None
    seal_cert: Path | None = None
    """E-seal certificate (PEM/DER); optional with PKCS#12 or when the token holds it."""
    seal_chain: Path | None = None
    """PEM bundle of intermediates (and root) embedded in seals."""
    trust_roots: Path | None = None
    """PEM bundle of trust anchors for the e-seal and the TSA (the organisation's root CA)."""
    previous_seal_certs: Path | None = None
    """PEM bundle of retired e-seal certificates, published in the trust chain."""
    sm2_key: Path | None = None
    """SM2 private key (PKCS#8 PEM, curve 1.2.156.10197.1.301)."""
    sm2_cert: Path | None = None
    """SM2 certificate (PEM) carried in SM2 seals, if the organisation has one."""
    pkcs11_module: Path | None = None
    """PKCS#11 library of the HSM; when set, the e-seal key is used on the token."""
    pkcs11_token_label: str | None = None
    pkcs11_pin: SecretStr | None = None
    pkcs11_key_label: str | None = None
    tsa_cert: Path | None = None
    """Certificate of the built-in TSA in production (with serve_tsa)."""
    tsa_key: Path | None = None
    serve_tsa: bool = False
    """Serve the built-in TSA at ``/tsa`` in production (always served in development)."""
    checkpoint_every_entries: int = Field(default=1000, ge=1)
    """Seal a ledger checkpoint once this many entries were added since the last one..."""
    checkpoint_interval_seconds: float = Field(default=3600.0, gt=0)
    """...and at least this often while the ledger grows (Celery beat)."""

    # Durable background work (archive/work.py): leases, retries and the reconciler.
    work_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    """A running task renews its lease every third of this; a dead worker's work is taken
    up again once its lease has run out."""
    work_max_attempts: int = Field(default=8, ge=1, le=100)
    """Runs of a task (transient failures and lost workers included) before it fails for good."""
    work_retry_seconds: float = Field(default=5.0, gt=0)
    """First back-off after a transient failure; doubles with every attempt..."""
    work_retry_max_seconds: float = Field(default=600.0, gt=0)
    """...up to this."""
    work_reconcile_seconds: float = Field(default=10.0, gt=0, le=3600)
    """How often each worker's reconciler looks for work that is due."""
    work_stuck_seconds: float = Field(default=21600.0, gt=0)
    """Work recorded this long ago and not running counts as stuck even while workers take
    other work up: far longer than a backlog should take to drain (:func:`archive.work.counts`)."""

    upload_dir: Path | None = None
    """Staging for resumable uploads on the local backend; default ``DATA_DIR/uploads``."""
    upload_expiry_hours: float = 72.0
    upload_idle_seconds: float = Field(default=60.0, ge=1, le=3600)
    """Seconds an upload's body may send nothing before it is given up (400 ``upload_stalled``;
    a tus upload keeps what arrived and its client resumes): a client gone silent without
    closing its connection must not hold an upload slot, or a tus upload's lock, for ever."""

    # Request heads (api/http.py): more is refused with 431 before any route runs.
    max_header_fields: int = Field(default=100, ge=10, le=10_000)
    max_header_line_bytes: int = Field(default=8 * 1024, ge=1024, le=1024 * 1024)
    """One header field line (name, ``: ``, value) or the request line."""
    max_header_bytes: int = Field(default=64 * 1024, ge=4 * 1024, le=16 * 1024 * 1024)
    """The whole request head: request line and every header line."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    """A request body other than evidence (JSON, forms): more is refused with 413 before any
    route runs or any token is checked. Evidence streams (direct and tus uploads) are not bounded
    by it."""
    gap_tolerance_seconds: float = 1.0
    capture_allow_networks: str = ""
    """Comma-separated CIDRs the inspection browser may reach although they are loopback,
    private or link-local (refused by default, so the browser is no way into our network)."""
    capture_max_seconds: int = 600
    """Longest inspection an officer may ask for."""
    capture_max_bytes: int = 512 << 20
    """Most bytes one inspection may download (page resources or stream) before it stops."""
    capture_max_response_bytes: int = 64 << 20
    """Largest single response the inspection browser accepts."""
    capture_extra_roots: Path | None = None
    """PEM bundle of CAs the inspection trusts besides the system's (an agency's own CA)."""
    capture_browser: str = "/usr/bin/chromium"
    """The Chromium the inspections drive (Debian's; Playwright never downloads one)."""
    time_zone: str = DEFAULT_TIME_ZONE
    """IANA time zone in which pages, certificates and the CLI show times (with the offset);
    storage, the ledger and the API stay in UTC."""

    @field_validator("retention_classes")
    @classmethod
    def _sane_classes(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        for name, years in value.items():
            if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
                raise ValueError(f"retention class name {name!r}: 1-40 of a-z, 0-9 and _")
            if years is not None and not 1 <= years <= 1000:
                raise ValueError(f"retention class {name}: years must be 1-1000, or null for permanent")
        return value

    @model_validator(mode="after")
    def _default_class_exists(self) -> Settings:
        if self.retention_default_class not in self.retention_classes:
            raise ValueError(
                f"EVIDENCE_RETENTION_DEFAULT_CLASS {self.retention_default_class!r} is not one of "
                f"EVIDENCE_RETENTION_CLASSES {sorted(self.retention_classes)}"
            )
        return self

    @field_validator("capture_allow_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        import ipaddress

        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:  # fail at start-up, not at the first inspection
                raise ValueError(f"capture_allow_networks: {part!r} is not a CIDR network") from exc
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        check_zone(value)  # fail at start-up, not on the first page
        return value

    # Certified exports and fixity audits.
    export_organisation: str = "Evidence Archive"
    """Source-Organization written into every export's bag-info.txt."""
    export_contact_name: str | None = None
    export_contact_email: str | None = None
    export_certificate_font: Path = CERTIFICATE_FONT
    """TrueType font (or collection: its first face) embedded in each export's certificate.pdf,
    which is in Chinese and English: it must have Chinese glyphs. An export whose font cannot be
    read fails, naming it (``certificate_font_missing``)."""
    export_link_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    """How long a signed download link stays valid."""
    export_link_secret: SecretStr | None = None
    """HMAC key of download links; required in production, generated in DATA_DIR in development."""
    fixity_bytes_per_second: int = Field(default=50 * MiB, ge=1024)
    """Pace cap of fixity audits, so they never starve ingest or downloads of disk bandwidth."""
    fixity_max_bytes_per_run: int = Field(default=20 * 1024 * MiB, ge=1)
    fixity_max_objects_per_run: int = Field(default=1000, ge=1)
    fixity_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often Celery beat starts a fixity audit run."""

    metrics_dir: Path | None = None
    """Where every process writes its Prometheus metrics (multiprocess mode); default
    ``DATA_DIR/metrics``. ``PROMETHEUS_MULTIPROC_DIR``, when set, wins. The API, workers
    and beat must share it for ``/metrics`` to show the workers' task metrics."""
    metrics_token: SecretStr | None = None
    """Bearer token a Prometheus scraper presents to ``GET /metrics`` (32+ bytes); an
    admin's API token is accepted too."""
    preflight_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """Production start-up checks: how long the TSA and the S3 server get to answer."""

    # Identity and access (archive/identity/users.py, archive/identity/signin.py, archive/identity/throttle.py).
    signin_max_failures_per_client: int = Field(default=20, ge=1)
    """Failed sign-ins and invalid credentials one client address may present per window;
    the next attempt answers 429 ``too_many_attempts``."""
    signin_max_failures_per_account: int = Field(default=10, ge=1)
    """Failed second-factor codes one account may receive per window."""
    signin_failure_window_seconds: int = Field(default=900, ge=1)
    throttle_storage_url: str | None = None
    """``limits`` storage for the counters; default the Redis broker when it is Redis,
    else memory (one API process: the embedded default)."""
    session_ttl_seconds: int = Field(default=2 * 3600, ge=60, le=7 * 24 * 3600)
    """A browser session ends this long after sign-in."""
    require_totp_roles: str = ""
    """Comma-separated roles (e.g. ``reviewer,admin``) that must give a TOTP second factor."""

    # Single sign-on with the agency's directory (OpenID Connect, archive/identity/sso.py).
    oidc_issuer: str | None = None
    """Issuer URL of the OpenID Provider; sign-in with it is offered when set."""
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile"
    oidc_redirect_url: str | None = None
    """Where the provider sends the browser back; default ``<this server>/login/oidc/callback``."""
    oidc_username_claim: str = "preferred_username"
    """The claim a user is matched by (and named after when provisioned)."""
    oidc_role_claim: str | None = "evidence_role"
    """Claim holding the role; its value replaces the user's role at each sign-in."""
    oidc_unit_claim: str | None = "evidence_unit"
    """Claim holding the unit; likewise."""
    oidc_provision: bool = True
    """Create a user at first sign-in (needs the role and unit claims)."""

    log_level: str = "INFO"

    @model_validator(mode="after")
    def _production_needs_everything(self) -> Settings:
        if self.mode != "production":
            return self
        missing = []
        if not self.database_url or self.database_url.startswith("sqlite"):
            missing.append("EVIDENCE_DATABASE_URL (PostgreSQL)")
        if self.storage_backend != "s3":
            missing.append("EVIDENCE_STORAGE_BACKEND=s3")
        for name in ("s3_endpoint", "s3_access_key", "s3_secret_key"):
            if not getattr(self, name):
                missing.append(f"EVIDENCE_{name.upper()}")
        if not self.broker_url:
            missing.append("EVIDENCE_BROKER_URL (Redis)")
        if self.task_always_eager:
            missing.append("EVIDENCE_TASK_ALWAYS_EAGER must be false")
        # No development PKI in production: the organisation's own keys, roots and TSA.
        if not self.seal_key and not self.pkcs11_module:
            missing.append("EVIDENCE_SEAL_KEY or EVIDENCE_PKCS11_MODULE")
        if self.pkcs11_module and not (self.pkcs11_token_label and self.pkcs11_pin and self.pkcs11_key_label):
            missing.append("EVIDENCE_PKCS11_TOKEN_LABEL, EVIDENCE_PKCS11_PIN and EVIDENCE_PKCS11_KEY_LABEL")
        for name in ("trust_roots", "sm2_key", "tsa_url", "export_link_secret"):
            if not getattr(self, name):
                missing.append(f"EVIDENCE_{name.upper()}")
        if self.serve_tsa and not (self.tsa_cert and self.tsa_key):
            missing.append("EVIDENCE_TSA_CERT and EVIDENCE_TSA_KEY (EVIDENCE_SERVE_TSA is set)")
        if missing:
            raise ConfigurationError("production mode needs: " + ", ".join(missing))
        return self

    # Derived locations: one place decides the layout of the data directory.

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'evidence.db').resolve()}"

    @property
    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "objects").resolve()

    @property
    def resolved_keys_dir(self) -> Path:
        return (self.keys_dir or self.data_dir / "keys").resolve()

    @property
    def resolved_upload_dir(self) -> Path:
        return (self.upload_dir or self.data_dir / "uploads").resolve()

    @property
    def resolved_metrics_dir(self) -> Path:
        return (self.metrics_dir or self.data_dir / "metrics").resolve()

    @property
    def queue_dir(self) -> Path:
        return (self.data_dir / "queue").resolve()

    @property
    def resolved_throttle_storage_url(self) -> str:
        """Where sign-in failure counters live (shared by every API process)."""
        if self.throttle_storage_url:
            return self.throttle_storage_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "memory://"

    @property
    def totp_roles(self) -> frozenset[str]:
        """The roles that must give a second factor."""
        return frozenset(r.strip() for r in self.require_totp_roles.split(",") if r.strip())

    @property
    def is_embedded(self) -> bool:
        """True when running the single-machine default (no external servers)."""
        return self.storage_backend == "local" and not self.broker_url


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
