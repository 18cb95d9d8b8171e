"""Accounts (administrators) and personal access tokens (each user's own)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.schemas import ErrorResponse
from archive.identity import users as user_service
from archive.models import ApiToken, Role, User

router = APIRouter(tags=["access"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422, 429)}
ADMINS = {Role.admin}


MAX_EXPIRY = 10 * 366 * 24 * 3600
"""Ten years: a token's expiry must stay a date the database can hold."""


def _number_only(value: object) -> object:
    # JSON true/false and text are not seconds (lax pydantic would take true as 1).
    if isinstance(value, (bool, str)):
        raise ValueError("must be a number of seconds")
    return value


Seconds = Annotated[int, Field(ge=1, le=MAX_EXPIRY), BeforeValidator(_number_only)]


class UserPublic(BaseModel):
    id: str
    name: str
    role: Role
    unit: str
    active: bool
    totp_enrolled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(id=user.id, name=user.name, role=user.role, unit=user.unit.name, active=user.active,
                   totp_enrolled=user.totp_enrolled_at is not None, created_at=user.created_at)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=user_service.USER_NAME_LENGTH, pattern=r"\S")
    unit: str = Field(min_length=1, max_length=200, pattern=r"\S")
    role: Role
    expires_in: Seconds | None = Field(None, description="Seconds until the first token expires")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: StrictBool | None = Field(None, description="false disables the user at once; true re-enables")
    role: Role | None = None
    unit: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")


class TokenPublic(BaseModel):
    id: str
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenPublic:
        return cls(id=row.id, user=row.user.name, name=row.name, created_at=row.created_at,
                   expires_at=row.expires_at, revoked_at=row.revoked_at)


class TokenIssued(TokenPublic):
    token: str = Field(description="The secret, shown only in this answer")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    expires_in: Seconds | None = Field(None, description="Seconds until the token stops working")


class UserCreated(BaseModel):
    user: UserPublic
    token: TokenIssued


def _issued(row: ApiToken, token: str) -> TokenIssued:
    return TokenIssued(**TokenPublic.of(row).model_dump(), token=token)


@router.get("/api/v1/users", response_model=list[UserPublic], responses=ERRORS)
def list_users(session: SessionDep, user: CurrentUser) -> list[UserPublic]:
    """Every user (administrators)."""
    user_service.require_role(user, ADMINS, doing="manage users")
    return [UserPublic.of(u) for u in user_service.list_users(session)]


@router.post("/api/v1/users", status_code=201, response_model=UserCreated, responses=ERRORS)
def create_user(body: UserCreate, session: SessionDep, user: CurrentUser) -> UserCreated:
    """Create a user with a first token, shown once (administrators)."""
    user_service.require_role(user, ADMINS, doing="manage users")
    created, token = user_service.add_user(session, name=body.name, unit=body.unit, role=body.role,
                                           actor=user_service.actor_name(user), expires_in=body.expires_in)
    row = user_service.list_tokens(session, user=created)[0]
    return UserCreated(user=UserPublic.of(created), token=_issued(row, token))


@router.get("/api/v1/users/{name}", response_model=UserPublic, responses=ERRORS)
def get_user(name: str, session: SessionDep, user: CurrentUser) -> UserPublic:
    """One user (administrators)."""
    user_service.require_role(user, ADMINS, doing="manage users")
    return UserPublic.of(user_service.find_user(session, name=name))


@router.patch("/api/v1/users/{name}", response_model=UserPublic, responses=ERRORS)
def change_user(name: str, body: UserChange, session: SessionDep, user: CurrentUser) -> UserPublic:
    """Disable, re-enable, or change a user's role or unit (administrators); holds at once."""
    user_service.require_role(user, ADMINS, doing="manage users")
    changed = user_service.update_user(session, name=name, actor=user_service.actor_name(user),
                                       active=body.active, role=body.role, unit=body.unit)
    return UserPublic.of(changed)


@router.get("/api/v1/users/{name}/tokens", response_model=list[TokenPublic], responses=ERRORS)
def list_user_tokens(name: str, session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    """A user's tokens, without their secrets (administrators)."""
    user_service.require_role(user, ADMINS, doing="manage users")
    owner = user_service.find_user(session, name=name)
    return [TokenPublic.of(t) for t in user_service.list_tokens(session, user=owner)]


@router.get("/api/v1/tokens", response_model=list[TokenPublic], responses=ERRORS)
def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    """The caller's own tokens, without their secrets."""
    return [TokenPublic.of(t) for t in user_service.list_tokens(session, user=user)]


@router.post("/api/v1/tokens", status_code=201, response_model=TokenIssued, responses=ERRORS)
def create_token(body: TokenCreate, session: SessionDep, services: ServicesDep, user: CurrentUser) -> TokenIssued:
    """A personal access token for a program; the secret is in this answer only."""
    row, token = user_service.issue_token(session, user=user, name=body.name, expires_in=body.expires_in,
                                          actor=user_service.actor_name(user), totp_roles=services.settings.totp_roles)
    return _issued(row, token)


@router.delete("/api/v1/tokens/{token_id}", response_model=TokenPublic, responses=ERRORS)
def revoke_token(token_id: str, session: SessionDep, user: CurrentUser) -> TokenPublic:
    """Revoke a token at once: one's own, or any (administrators)."""
    owner = None if user.role == Role.admin else user
    row = user_service.revoke_token(session, token_id=token_id, actor=user_service.actor_name(user), owner=owner)
    return TokenPublic.of(row)
