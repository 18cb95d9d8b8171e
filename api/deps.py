"""Request dependencies: the service context, a session, and the authenticated user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from archive.db import Database
from archive.models import User
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.users import authenticate


@dataclass
class Services:
    """What every request may need, built once when the app starts."""

    settings: Settings
    db: Database
    store: ObjectStore
    celery: Celery

    def enqueue(self, task: str, *args: object) -> None:
        """Send a task by name (call only after the database commit)."""
        self.celery.send_task(task, args=list(args))


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.db.session() as session:
        yield session


# scope="function": commit when the route returns, before the response is sent. With
# FastAPI's default ("request") the commit ran after the client already had its 201, so
# a client that at once used what it had created could be told 404.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

MAX_DB_INT = 2**31 - 1
"""Largest integer a query may compare with an INTEGER column (ledger seq, tree size);
larger ones make the driver or PostgreSQL fail (a 500) instead of matching nothing."""

_bearer = HTTPBearer(auto_error=False, description="API token from `evidence user add`")


def get_user(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    return authenticate(session, token=token)


def get_user_id(services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """Authenticate in a short session of its own (for streaming routes that hold none)."""
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    with services.db.session() as session:
        return authenticate(session, token=token).id


CurrentUser = Annotated[User, Depends(get_user)]
CurrentUserId = Annotated[str, Depends(get_user_id)]
