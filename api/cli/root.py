"""The root of the ``evidence`` command line: the group every command hangs on, and the
settings and actor the commands share."""

from __future__ import annotations

import getpass
import logging

import click

from archive.errors import ArchiveError
from archive.heap import freeze_at_exit
from archive.settings import Settings, load_settings


def cli_settings() -> Settings:
    """The settings from the environment; a bad environment is a usage error, not a traceback."""
    try:
        return load_settings()
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    except Exception as exc:  # pydantic validation of the environment
        raise click.ClickException(f"invalid settings: {exc}") from exc


def cli_actor() -> str:
    """Who the custody ledger records as acting through this command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli:unknown"


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def main(verbose: bool) -> None:
    """Evidence archive: case vaults, custody ledger, seals and verification."""
    freeze_at_exit()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
