"""Request dependencies: the service context, a session, and the authenticated user."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What every request may need, built once when the app starts."""

    settings: Settings
    db: Database
    store: ObjectStore
    celery: Celery

    def enqueue(self, task: str, *args: object) -> None:
        """Ring the workers' bell for a task (call only after the database commit).

        Never raises: the work itself is recorded in the database (archive.work), and
        the reconciler sends it if this bell is lost, so a broker outage cannot turn an
        answer about committed evidence into an error.
        """
        try:
            self.celery.send_task(task, args=list(args))
        except Exception:  # noqa: BLE001 - see above; logged for operators
            log.warning("could not send %s%s; the reconciler will", task, tuple(args), exc_info=True)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request, services: ServicesDep) -> Iterator[Session]:
    """The request's session: a reading one for GET/HEAD (no write lock), else a writing one.

    A GET that must record something (a custody entry for a read of evidence) writes it
    in a short session of its own (``services.db.session()``).
    """
    factory = services.db.read if request.method in READ_METHODS else services.db.session
    with factory() as session:
        yield session


# "function" scope: the transaction commits when the route returns, before the reply is
# sent, so a client never reads "201 Created" for something a failed commit then lost,
# nor fails to find, in its next request, what it was just told exists.
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
    with services.db.read() as session:
        return authenticate(session, token=token).id


CurrentUser = Annotated[User, Depends(get_user)]
CurrentUserId = Annotated[str, Depends(get_user_id)]
