"""Resumable uploads to a running server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from api.cli.root import main


@main.command("upload")
@click.argument("case_id")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, type=click.Choice(["bodycam_video", "interview_video", "document", "remote_capture", "other"]))
@click.option("--device-id", default=None, help="Recording device (camera, room).")
@click.option("--recorded-start", default=None, help="Declared recording start, ISO 8601 with zone.")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="EVIDENCE_URL", help="API base URL.")
@click.option("--token", envvar="EVIDENCE_TOKEN", required=True, help="API token (or EVIDENCE_TOKEN).")
@click.option("--chunk-size", default=8, show_default=True, type=click.IntRange(1, 1024), help="MiB per request.")
def upload(case_id: str, files: tuple[Path, ...], kind: str, device_id: str | None, recorded_start: str | None,
           url: str, token: str, chunk_size: int) -> None:
    """Upload files resumably (tus); each file's item id is printed on its last line.

    Run the same command again after an interruption and it resumes where it stopped.
    """
    from rich.console import Console

    from api import tus_client

    console = Console(stderr=True)
    state = tus_client.UploadState(tus_client.state_path())
    for path in files:
        request = tus_client.UploadRequest(
            case_id=case_id, path=path, kind=kind, device_id=device_id, recorded_start=recorded_start
        )
        try:
            item_id = tus_client.upload_file(
                request, base_url=url, token=token, chunk_size=chunk_size * 1024 * 1024, console=console,
                state=state,
            )
        except tus_client.Interrupted as exc:
            click.echo(f"{path.name}: {exc}; run the same command again to resume", err=True)
            sys.exit(3)
        except tus_client.UploadError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{path.name}: sha256 verified by the server", err=True)
        click.echo(item_id)
