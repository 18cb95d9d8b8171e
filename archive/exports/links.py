"""Signed, time-limited download links for certified exports.

A link carries an HMAC over the export, its expiry and the user who asked for it, and
stands in for the bearer token; the user must still be allowed when the link is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from archive.errors import ConfigurationError, Unauthenticated
from archive.models import ExportRequest, User
from archive.settings import Settings

log = logging.getLogger(__name__)


def link_secret(settings: Settings) -> bytes:
    """The HMAC key for download links: from settings, or generated once in development."""
    configured = settings.export_link_secret
    if configured is not None:
        return configured.get_secret_value().encode()
    if settings.mode == "production":
        raise ConfigurationError("EVIDENCE_EXPORT_LINK_SECRET is required in production")
    path = settings.data_dir.resolve() / "export-link.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    log.warning("generated a development download-link secret in %s", path)
    return path.read_bytes()


def _link_mac(secret: bytes, export_id: str, expires: int, user_id: str) -> str:
    message = f"export-download\n{export_id}\n{expires}\n{user_id}".encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class DownloadLink:
    """A signed URL path for one export, valid until ``expires_at``."""

    path: str
    expires_at: datetime


def make_link(*, settings: Settings, export: ExportRequest, user: User, now: float | None = None) -> DownloadLink:
    """Sign a download link for ``user``'s access to ``export`` (checked again on use)."""
    ttl = settings.export_link_ttl_seconds
    expires = int((now or time.time()) + ttl)
    mac = _link_mac(link_secret(settings), export.id, expires, user.id)
    return DownloadLink(
        path=f"/api/v1/exports/{export.id}/download?expires={expires}&user={user.id}&sig={mac}",
        expires_at=datetime.fromtimestamp(expires, timezone.utc),
    )


def check_link(
    session: Session, *, settings: Settings, export_id: str, expires: int, user_id: str, sig: str,
    now: float | None = None,
) -> User:
    """The user a valid, unexpired link was made for (who must still be allowed)."""
    expected = _link_mac(link_secret(settings), export_id, expires, user_id)
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
    if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogateescape")):
        raise Unauthenticated("the download link's signature is not valid", code="invalid_link")
    if (now or time.time()) > expires:
        raise Unauthenticated("the download link has expired", code="link_expired")
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise Unauthenticated("the download link's user is no longer active", code="invalid_link")
    return user
