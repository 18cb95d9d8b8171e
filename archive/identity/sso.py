"""Single sign-on with the agency's directory: OpenID Connect, authorization code with PKCE.

Authlib drives the protocol (authorization URL with ``state``, ``nonce`` and an S256 code
challenge; the code exchange with the verifier); joserfc checks the ID token against the
provider's published keys: issuer, audience, expiry and our ``nonce``. A returned
``state`` or ``nonce`` that differs from the one this browser was given is refused.
Users are matched by a configured claim (``external_subject``, or on first sign-in a
local user of that name) or provisioned; their role and unit follow the configured claims.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.errors import ConfigurationError, Unauthenticated
from archive.models import User
from archive.settings import Settings
from archive.identity.users import add_user, check_user_may_sign_in, update_user
from archive.wording import Sentences

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

# The OpenID client libraries (httpx, requests, Authlib, joserfc) are loaded at the first
# sign-in through the provider: an API process without single sign-on keeps their memory.

PROVIDER_TIMEOUT = 10.0


SSO_REFUSALS = Sentences("sso_refusal", {
    "not_started": "this sign-in was not started in this browser",
    "state_mismatch": "the state returned by the provider does not match this sign-in",
    "provider_refused": "the provider refused: {words}",
    "no_code": "the provider returned no authorization code",
    "answer_refused": "the provider's answer was refused: {detail}",
    "no_answer": "the OpenID Provider did not answer: {detail}",
    "no_claim": "the ID token has no {claim} claim",
    "no_user": "no user {subject}, and the directory gives no role and unit to create one",
}, fields={"claim": r"'[^']*'", "subject": r"'.*'"})
"""Why a sign-in through the provider was refused (:class:`SsoRefused`'s message, kept as the
failed sign-in's reason): ``words`` is the provider's own error code and description,
``detail`` the OpenID libraries' or the transport's message, ``claim`` and ``subject`` quoted."""


class SsoRefused(Unauthenticated):
    """The provider's answer was refused (state, nonce, signature, claims...)."""

    code = "sso_refused"


@dataclass(frozen=True)
class PendingLogin:
    """What the browser keeps between leaving for the provider and coming back."""

    state: str
    nonce: str
    verifier: str


def enabled(settings: Settings) -> bool:
    """Whether single sign-on is configured."""
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def _discovery(settings: Settings) -> dict[str, Any]:
    if not enabled(settings):
        raise ConfigurationError("single sign-on is not configured (EVIDENCE_OIDC_ISSUER, _CLIENT_ID)")
    import httpx

    url = settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"  # type: ignore[union-attr]
    try:
        reply = httpx.get(url, timeout=PROVIDER_TIMEOUT)
        reply.raise_for_status()
        return reply.json()
    except httpx.HTTPError as exc:
        raise SsoRefused(SSO_REFUSALS.say("no_answer", detail=exc)) from exc


def _client(settings: Settings, redirect_uri: str) -> OAuth2Session:
    from authlib.integrations.requests_client import OAuth2Session

    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    return OAuth2Session(
        client_id=settings.oidc_client_id, client_secret=secret, scope=settings.oidc_scopes,
        redirect_uri=redirect_uri, code_challenge_method="S256",
    )


def begin(settings: Settings, *, redirect_uri: str) -> tuple[str, PendingLogin]:
    """The provider's authorization URL for a new sign-in, and what to remember meanwhile."""
    config = _discovery(settings)
    pending = PendingLogin(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                           verifier=secrets.token_urlsafe(48))
    with _client(settings, redirect_uri) as client:
        url, _state = client.create_authorization_url(
            config["authorization_endpoint"], state=pending.state, nonce=pending.nonce, code_verifier=pending.verifier,
        )
    return url, pending


def finish(settings: Settings, *, pending: PendingLogin | None, params: dict[str, str], redirect_uri: str) -> dict[str, Any]:
    """The verified ID token claims of a completed sign-in; SsoRefused otherwise."""
    if pending is None:
        raise SsoRefused(SSO_REFUSALS.say("not_started"))
    # As bytes: compare_digest refuses text with non-ASCII characters (?state=é was a TypeError).
    if not secrets.compare_digest(params.get("state", "").encode("utf-8", "surrogateescape"), pending.state.encode()):
        raise SsoRefused(SSO_REFUSALS.say("state_mismatch"))
    if "error" in params:
        words = f"{params.get('error')} {params.get('error_description', '')}".strip()
        raise SsoRefused(SSO_REFUSALS.say("provider_refused", words=words))
    if not params.get("code"):
        raise SsoRefused(SSO_REFUSALS.say("no_code"))
    import httpx
    import requests
    from authlib.common.errors import AuthlibBaseError
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    config = _discovery(settings)
    try:
        with _client(settings, redirect_uri) as client:
            token = client.fetch_token(config["token_endpoint"], grant_type="authorization_code", code=params["code"],
                                       code_verifier=pending.verifier, timeout=PROVIDER_TIMEOUT)
        keys = KeySet.import_key_set(httpx.get(config["jwks_uri"], timeout=PROVIDER_TIMEOUT).json())
        id_token = jwt.decode(token["id_token"], keys)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": config["issuer"]},
            aud={"essential": True, "value": settings.oidc_client_id},
            nonce={"essential": True, "value": pending.nonce},
            exp={"essential": True},
            sub={"essential": True},
        ).validate(id_token.claims)
    except (AuthlibBaseError, JoseError, httpx.HTTPError, requests.RequestException, KeyError, ValueError) as exc:
        raise SsoRefused(SSO_REFUSALS.say("answer_refused", detail=exc)) from exc
    return dict(id_token.claims)


def user_for(session: Session, *, settings: Settings, claims: dict[str, Any], actor: str = "system:sso") -> User:
    """The user these claims sign in: matched by the configured claim, else provisioned;
    role and unit follow the configured claims (each change a custody entry)."""
    subject = claims.get(settings.oidc_username_claim)
    if not isinstance(subject, str) or not subject:
        raise SsoRefused(SSO_REFUSALS.say("no_claim", claim=repr(settings.oidc_username_claim)))
    role = claims.get(settings.oidc_role_claim) if settings.oidc_role_claim else None
    unit = claims.get(settings.oidc_unit_claim) if settings.oidc_unit_claim else None
    user = session.execute(select(User).where(User.external_subject == subject)).scalar_one_or_none()
    if user is None:
        user = session.execute(select(User).where(User.name == subject)).scalar_one_or_none()
    if user is None:
        if not (settings.oidc_provision and role and unit):
            raise SsoRefused(SSO_REFUSALS.say("no_user", subject=repr(subject)))
        user, _none = add_user(session, name=subject, unit=unit, role=role, actor=actor, initial_token=False,
                               external_subject=subject)
    check_user_may_sign_in(user)
    if user.external_subject is None:  # a local user signing in through the directory the first time
        user.external_subject = subject
        session.flush()  # before update_user's custody entry: the ledger lock is taken last
    if role or unit:
        user = update_user(session, name=user.name, actor=actor, role=role or None, unit=unit or None)
    return user
