"""E-seal keys and certificates."""

from __future__ import annotations

import click

from api.cli.root import cli_settings, main
from archive.errors import ArchiveError
from archive.settings import Settings


@main.group()
def keys() -> None:
    """E-seal keys and certificates."""


@keys.command("init")
def keys_init() -> None:
    """Create the development PKI (root CA, e-seal, TSA, SM2 key) if absent; print its paths."""
    from archive.seals.sealer import ensure_development_keys

    settings = cli_settings()
    try:
        pki, created = ensure_development_keys(settings)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    if created:
        click.secho(
            "WARNING: DEVELOPMENT PKI CREATED. Its root CA, e-seal and TSA keys are plain files on this machine;\n"
            "seals made with it prove nothing outside development and tests. Production configures the\n"
            "organisation's own keys (EVIDENCE_SEAL_KEY or EVIDENCE_PKCS11_*), roots and an external TSA.",
            fg="red", bold=True, err=True,
        )
    else:
        click.echo("development PKI already present (unchanged)", err=True)
    _record_keys(settings)
    for name in ("root_cert", "seal_cert", "seal_key", "tsa_cert", "tsa_key", "sm2_key", "sm2_public", "chain"):
        click.echo(f"{name}: {getattr(pki, name)}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Issue a new development e-seal key and certificate; retired certificates are kept."""
    import signing
    from archive.seals.sealer import ensure_development_keys, keys_lock

    settings = cli_settings()
    if settings.pkcs11_module or settings.seal_key:
        raise click.ClickException(
            "production keys are rotated by installing the organisation's new key/certificate and pointing "
            "EVIDENCE_SEAL_* at them (keep the old certificate in EVIDENCE_PREVIOUS_SEAL_CERTS)"
        )
    try:
        pki, _ = ensure_development_keys(settings)
        _record_keys(settings)  # the retiring certificate, in case it never sealed
        with keys_lock(pki.directory):
            signing.rotate_seal_key(pki.directory)
    except signing.SigningError as exc:
        raise click.ClickException(f"rotation failed: {exc.reason}") from exc
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    _record_keys(settings)
    click.echo(f"new e-seal certificate: {pki.seal_cert}")
    click.echo(f"every e-seal certificate ever issued: {pki.seal_certs_dir}")


def _record_keys(settings: Settings) -> None:
    """Record the configuration's certificates in the database, when it is reachable."""
    from archive import db as archive_db
    from archive.seals.registry import record_sealer_certificates
    from archive.seals.sealer import Sealer
    from archive.db import Database

    try:
        if settings.is_embedded:
            archive_db.upgrade(settings)
        with Database(settings).session() as session:
            record_sealer_certificates(session, Sealer(settings))
    except Exception as exc:  # noqa: BLE001 - keys exist either way; sealing records them at first use
        click.echo(f"note: certificates not recorded in the database now ({type(exc).__name__})", err=True)
