"""Users and their personal access tokens."""

from __future__ import annotations

import click

from api.cli.root import cli_actor, cli_settings, main
from archive.errors import ArchiveError
from archive.timefmt import local_time


@main.group()
def user() -> None:
    """Users and their tokens."""


def _user_session():  # type: ignore[no-untyped-def]
    """A writing session on the configured database (migrated first on the embedded default)."""
    from archive import db as archive_db
    from archive.db import Database

    settings = cli_settings()
    if settings.is_embedded:
        archive_db.upgrade(settings)
    return Database(settings).session()


@user.command("add")
@click.option("--name", required=True, help="Unique user name.")
@click.option("--unit", required=True, help="Unit (enforcement team); created when new.")
@click.option("--role", required=True, type=click.Choice(["officer", "reviewer", "court", "admin"]))
@click.option("--expires-in", type=click.IntRange(min=1), default=None, help="Seconds until the token stops working.")
def user_add(name: str, unit: str, role: str, expires_in: int | None) -> None:
    """Create a user; the token is printed once, on the last line."""
    from archive.identity.users import add_user

    try:
        with _user_session() as session:
            created, token = add_user(session, name=name, unit=unit, role=role, actor=cli_actor(), expires_in=expires_in)
            click.echo(f"created {role} {created.name} in unit {unit}; token (shown once):", err=True)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(token)


@user.command("list")
def user_list() -> None:
    """Every user: name, role, unit, active or disabled, second factor."""
    from archive.identity.users import list_users

    with _user_session() as session:
        for u in list_users(session):
            state = "active" if u.active else "disabled"
            totp = "totp" if u.totp_enrolled_at else "-"
            click.echo(f"{u.name}\t{u.role.value}\t{u.unit.name}\t{state}\t{totp}")


def _change_user(name: str, **changes: object) -> None:
    from archive.identity.users import update_user

    try:
        with _user_session() as session:
            changed = update_user(session, name=name, actor=cli_actor(), **changes)  # type: ignore[arg-type]
            click.echo(f"{changed.name}: {changed.role.value} in {changed.unit.name}, "
                       f"{'active' if changed.active else 'disabled'}")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc


@user.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Disable a user: every token and session is refused from the next request on."""
    _change_user(name, active=False)


@user.command("enable")
@click.argument("name")
def user_enable(name: str) -> None:
    """Re-enable a disabled user (their unexpired, unrevoked tokens work again)."""
    _change_user(name, active=True)


@user.command("set")
@click.argument("name")
@click.option("--role", type=click.Choice(["officer", "reviewer", "court", "admin"]), default=None)
@click.option("--unit", default=None, help="Move to this unit (created when new).")
def user_set(name: str, role: str | None, unit: str | None) -> None:
    """Change a user's role or unit."""
    _change_user(name, role=role, unit=unit)


@main.group()
def token() -> None:
    """Personal access tokens."""


@token.command("create")
@click.option("--user", "user_name", required=True, help="The token's owner.")
@click.option("--name", "label", default="cli", show_default=True, help="A label saying what the token is for.")
@click.option("--expires-in", type=click.IntRange(min=1), default=None, help="Seconds until the token stops working.")
def token_create(user_name: str, label: str, expires_in: int | None) -> None:
    """Issue a token; its id goes to stderr, the token itself is the last line."""
    from archive.identity.users import find_user, issue_token

    try:
        with _user_session() as session:
            owner = find_user(session, name=user_name)
            row, secret = issue_token(session, user=owner, name=label, expires_in=expires_in, actor=cli_actor(),
                                      totp_roles=cli_settings().totp_roles)
            click.echo(f"token {row.id} for {owner.name} (shown once):", err=True)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(secret)


@token.command("list")
@click.option("--user", "user_name", default=None, help="Only this user's tokens.")
def token_list(user_name: str | None) -> None:
    """Tokens (never their secrets): id, owner, label, expiry, revocation."""
    from archive.identity.users import find_user, list_tokens

    try:
        with _user_session() as session:
            owner = find_user(session, name=user_name) if user_name else None
            zone = cli_settings().time_zone
            for t in list_tokens(session, user=owner):
                click.echo(f"{t.id}\t{t.user.name}\t{t.name}\texpires={local_time(t.expires_at, zone) or '-'}"
                           f"\trevoked={local_time(t.revoked_at, zone) or '-'}")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token: refused from the next request on."""
    from archive.identity.users import revoke_token

    try:
        with _user_session() as session:
            row = revoke_token(session, token_id=token_id, actor=cli_actor())
            click.echo(f"revoked {row.id} ({row.name}) of {row.user.name}")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
