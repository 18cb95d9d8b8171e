"""Request dependencies: the service context, a session, and the authenticated user."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Annotated, Any

import anyio

from celery import Celery
from fastapi import Depends, Request
from fastapi._compat import field_annotation_is_sequence
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session

from api.list_cache import ListCache
from archive.custody import ledger
from archive.identity import signin
from archive.db import Database
from archive.errors import Forbidden, InvalidInput, Unauthenticated
from archive.evidence import items as evidence_service
from archive.models import EvidenceItem, User
from archive.seals.sealer import Sealer, SealerSource
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.identity.throttle import Throttle
from archive.identity.token_cache import TokenCache
from archive.identity.users import WITHDRAWN, authenticate

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What every request may need, built once when the app starts."""

    settings: Settings
    db: Database
    store: ObjectStore
    celery: Celery
    throttle: Throttle
    sealers: SealerSource
    tokens: TokenCache
    """Bearer tokens checked lately (never trusted past a change of a token, user or unit)."""
    lists: ListCache
    """Case evidence lists sent lately (never sent past a change of anything they show)."""

    @property
    def sealer(self) -> Sealer:
        """The e-seal as configured now (built at first use; may create the development PKI)."""
        return self.sealers.current()

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


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in the thread pool, a hand-off per
    # request (and a wait for a free thread under a burst) for one attribute read.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


class ContentCodingRefused(InvalidInput):
    """Evidence sent with a content coding (``Content-Encoding: gzip``...): 415, answered with
    ``Accept-Encoding: identity`` (RFC 9110 section 12.5.3)."""

    code = "unsupported_media_type"
    status = 415


def refuse_content_coding(request: Request) -> None:
    """Refuse (415 ``unsupported_media_type``) an evidence body sent with a content coding
    other than ``identity``. The archive keeps the bytes as they arrive and decodes nothing, so
    a gzip-coded clip was kept as its own original: the compressed bytes under the file's
    name, or 409 ``hash_mismatch`` against the hash the client rightly declared for the file."""
    codings = [c.strip().lower() for value in request.headers.getlist("content-encoding")
               for c in value.split(",") if c.strip()]
    if any(c != "identity" for c in codings):
        raise ContentCodingRefused(
            f"evidence is kept exactly as sent: send the file itself, without Content-Encoding "
            f"(got {', '.join(codings)!r})")


def refuse_repeated_header(request: Request, name: str, *, code: str, status: int = 422) -> None:
    """Refuse (``code``, ``status``) a request carrying header ``name`` more than once: which
    of its values would count is a guess a proxy and the server may make differently, so
    none is picked silently (``Idempotency-Key``, tus ``Upload-Length``...)."""
    if len(request.headers.getlist(name)) > 1:
        raise InvalidInput(f"{name} must be sent once; this request has it more than once", code=code, status=status)


def _query_params(dependant: Dependant) -> Iterator[str]:
    """The names of the scalar query parameters of ``dependant`` and of its dependencies."""
    for field in dependant.query_params:
        # FastAPI's own rule for reading a parameter with getlist (list, set, tuple...; not str),
        # from its private module: an upgrade that moves it fails this import at start-up.
        if not field_annotation_is_sequence(field.field_info.annotation):
            yield field.alias
    for sub in dependant.dependencies:
        yield from _query_params(sub)


async def one_value_per_query_parameter(request: Request) -> None:
    """Refuse (422 ``invalid_request``, naming it) a scalar query parameter given more than
    once: FastAPI would take the last silently, and which one the client meant is unknown
    (``?kind=video&kind=document``). Runs before the route's other dependencies and before
    a streamed body is read; parameters the route does not declare, and list ones, are left
    alone."""
    given = request.query_params
    route = request.scope.get("route")
    if len(given) == len(given.multi_items()) or not isinstance(route, APIRoute):
        return  # no name is repeated (the usual case: the route's parameters are not looked up)
    repeated = sorted({name for name in _query_params(route.dependant) if len(given.getlist(name)) > 1})
    if repeated:
        raise RequestValidationError([
            {"loc": ("query", name), "msg": f"given {len(given.getlist(name))} times; give it once",
             "type": "repeated_query_parameter"}
            for name in repeated
        ])


async def one_value_per_json_key(request: Request) -> None:
    """Refuse (422 ``invalid_request``, naming it) a JSON body giving one key twice in an
    object, at any depth: ``{"case_number": "D-1", "case_number": "D-2"}`` would be taken as
    D-2, and which the client meant is unknown. Only for a route that declares a JSON body,
    which FastAPI has read (bounded, see ``max_body_bytes``) before this runs: a streamed
    upload's body is never read here."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.dependant.body_params:
        return
    try:
        tree = json.loads(await request.body(), object_pairs_hook=_Pairs)
        repeated = sorted(set(_repeated_keys(tree, ())), key=lambda loc: [str(part) for part in loc])
    except (ValueError, RecursionError):
        return  # not JSON (or nested past any schema): the route's own validation says so
    if repeated:
        raise RequestValidationError([
            {"loc": ("body", *loc), "msg": "given more than once in one object; give it once",
             "type": "repeated_json_key"} for loc in repeated
        ])


class _Pairs(list):
    """A JSON object as its (key, value) pairs in the order given, repeats kept."""


def _repeated_keys(node: Any, path: tuple) -> Iterator[tuple]:
    """The full path (keys and array indices) of each key given again in one object of ``node``:
    ``{"aspects": {"subject": {"ok": true, "ok": false}}}`` names ``aspects.subject.ok``."""
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            if key in seen:
                yield (*path, key)
            seen.add(key)
            yield from _repeated_keys(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _repeated_keys(value, (*path, index))


ONE_VALUE_PER_QUERY_PARAMETER = [Depends(one_value_per_query_parameter), Depends(one_value_per_json_key)]
"""The API routers' ``dependencies`` (not the pages': HTML forms and their links are theirs):
one value per query parameter and per JSON key."""


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request, services: ServicesDep) -> AsyncIterator[Session]:
    """The request's session: a reading one for GET/HEAD (no write lock), else a writing one.

    A GET that must record something (a custody entry for a read of evidence) writes it
    in a short session of its own (``services.db.session()``).

    Opened in the event loop (a session takes its connection at its first query, not here).
    A writing session ends (commit or rollback: a round trip) in a thread of its own,
    shielded so that a client that leaves cannot leave the session open: one turn of the
    thread pool fewer than a plain generator, whose start and end each take one. A reading
    session ends in the event loop, where nothing can interrupt it: it has no transaction
    to end on the server (:meth:`archive.db.Database.read`), so ending it only gives its
    connection back to the pool, and a turn of the thread pool would cost more than that.
    """
    reading = request.method in READ_METHODS
    manager = services.db.read() if reading else services.db.session()
    session = manager.__enter__()
    try:
        yield session
    except BaseException as exc:
        if reading:
            if not manager.__exit__(type(exc), exc, exc.__traceback__):
                raise
        elif not await _end_in_thread(manager, type(exc), exc, exc.__traceback__):
            raise
    else:
        if reading:
            manager.__exit__(None, None, None)
        else:
            await _end_in_thread(manager, None, None, None)


async def _end_in_thread(manager: Any, *exc_info: Any) -> bool:
    """``manager.__exit__(*exc_info)`` in a thread outside the request pool's limit, shielded
    from cancellation; whether it swallowed the exception."""
    with anyio.CancelScope(shield=True):
        return bool(await anyio.to_thread.run_sync(manager.__exit__, *exc_info, limiter=anyio.CapacityLimiter(1)))


def record_read(services: Services, reading: Session, *, user: User, item: EvidenceItem,
                byte_range: tuple[int, int] | None = None, purpose: str = evidence_service.READ_PURPOSES.say("content"),
                ) -> dict[str, Any]:
    """A read of evidence's custody entry, in the ledger before the first byte leaves, once the
    request's reading session has given its connection back: a request never holds two
    connections at once (otherwise a burst of readers takes every pooled connection in their
    reading sessions and each then waits for a second one to write, until the pool's timeout
    answers 503). The reads a process serves at once share one commit
    (:func:`archive.evidence.items.record_read`). Returns the entry's details."""
    reading.close()
    return evidence_service.record_read(services.db, user=user, item=item, byte_range=byte_range, purpose=purpose)


def settle_ledger(services: ServicesDep) -> None:
    """Sequence the custody entries still waiting, before the request takes a connection of its
    own (a request never holds two): a route reading the ledger then finds every entry of the
    actions answered before it was asked (:func:`archive.custody.ledger.settle`). Declare it
    before the route's session and user."""
    ledger.settle(services.db.engine)


LedgerSettled = Annotated[None, Depends(settle_ledger)]


# "function" scope: the transaction commits when the route returns, before the reply is
# sent, so a client never reads "201 Created" for something a failed commit then lost,
# nor fails to find, in its next request, what it was just told exists.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

MAX_DB_INT = 2**31 - 1
"""Largest integer a query may compare with an INTEGER column (ledger seq, tree size);
larger ones make the driver or PostgreSQL fail (a 500) instead of matching nothing."""

_bearer = HTTPBearer(auto_error=False, description="API token from `evidence user add` or `/api/v1/tokens`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

SESSION_COOKIE = "evidence_session"
CSRF_HEADER = "X-CSRF-Token"


def client_address(request: Request) -> str:
    """The address failures are counted against (the peer; a proxy must pass it on)."""
    return request.client.host if request.client else "unknown"


def record_failure(services: Services, *, client: str, account: str | None = None, session: Session | None = None) -> None:
    """Count a failed attempt; a lock-out it starts is a custody entry, written in
    ``session`` or else in a short session of its own."""
    for lockout in services.throttle.failed(client=client, account=account):
        details = {"scope": lockout.scope, "key": lockout.key, "retry_after": lockout.retry_after}
        if session is not None:
            ledger.append(session, actor="system:throttle", action="access_locked_out", details=details)
            continue
        with services.db.session() as own:
            ledger.append(own, actor="system:throttle", action="access_locked_out", details=details)


def identify(services: Services, request: Request, credentials: HTTPAuthorizationCredentials | None,
             reading: Session | None = None) -> User:
    """The user behind a request: a bearer token, else the browser's session cookie.

    Every invalid credential counts as a failure; once the client is locked out, its invalid
    credentials are refused with 429 instead of 401. A cookie alone may change nothing
    without the session's CSRF token in the ``X-CSRF-Token`` header, so another site cannot
    make a browser act. The look-up runs in ``reading``, the request's own reading session (a
    GET's: it holds no lock), else in a read session of its own (detached), before the
    request's session holds any lock, so a failure can be recorded without waiting for the
    request's own transaction.
    """
    caller_checked(request)
    client = client_address(request)
    given = len(request.headers.getlist("authorization"))
    if given > 1:
        # Which one would count is a guess a proxy and the server may make differently.
        raise Unauthenticated(f"send one Authorization header; this request has {given}", code="several_credentials")
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if not token and not cookie:
        raise Unauthenticated("a bearer token is required", code="missing_token")
    totp_roles = services.settings.totp_roles
    try:
        with nullcontext(reading) if reading is not None else services.db.read() as session:
            if token:
                user = authenticate(session, token=token, totp_roles=totp_roles, cache=services.tokens)
            else:
                user = signin.session_user(session, secret=cookie, totp_roles=totp_roles)
    except Unauthenticated as exc:
        if exc.code != "second_factor_required":
            if reading is not None:
                reading.close()  # its connection goes back before the failure takes another
            # A locked-out address's failures are refused (429) and not counted again, while a
            # valid credential from it still works: tokens and session secrets are 256 random
            # bits, and the officers of a station share its address, so one uploader retrying
            # with an expired token must not lock all of them out.
            services.throttle.check(client=client)
            record_failure(services, client=client)
        raise
    cookie_writes = not token and request.method not in READ_METHODS
    if cookie_writes and not signin.csrf_matches(cookie, request.headers.get(CSRF_HEADER)):
        raise Forbidden(f"a signed-in browser must send the {CSRF_HEADER} header", code="csrf_failed")
    return user


def attach(session: Session, user: User) -> User:
    """A user read in a session of its own, attached to the request's ``session`` without a
    query. The request's (writing) transaction must not begin in a dependency: FastAPI
    resolves dependencies in one pool thread and runs the route in another, and a request
    holding SQLite's write lock while it waits for a free thread stalls every writer."""
    return session.merge(user, load=False)


def get_user(request: Request, session: SessionDep, services: ServicesDep, credentials: BearerDep) -> User:
    if request.method in READ_METHODS:
        # A GET's session only reads: the user is looked up in it, one transaction (and two
        # round trips) fewer than a session of its own.
        return identify(services, request, credentials, reading=session)
    return attach(session, identify(services, request, credentials))


def get_user_id(request: Request, services: ServicesDep, credentials: BearerDep) -> str:
    """Authenticate without the request's session (for streaming routes that hold none)."""
    return identify(services, request, credentials).id


def credential_check(services: Services, request: Request) -> Callable[[], None]:
    """A check that the credential ``request`` was admitted with was not withdrawn since
    (Unauthenticated, with the precise code, once it was: a token revoked, a user disabled, a
    session signed out; :data:`~archive.identity.users.WITHDRAWN`), for a request that runs
    long after it was admitted, such as an upload's body. One that merely expired meanwhile
    still holds for the request it admitted. Not a failed sign-in: nothing is counted against
    the client."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    token = token if scheme.lower() == "bearer" else None
    cookie = request.cookies.get(SESSION_COOKIE)
    totp_roles = services.settings.totp_roles

    def check() -> None:
        try:
            with services.db.read() as session:
                if token:
                    authenticate(session, token=token, totp_roles=totp_roles, cache=services.tokens)
                else:
                    signin.session_user(session, secret=cookie, totp_roles=totp_roles)
        except Unauthenticated as exc:
            if exc.code in WITHDRAWN:
                raise

    return check


CurrentUser = Annotated[User, Depends(get_user)]
CurrentUserId = Annotated[str, Depends(get_user_id)]


# --- the caller before the request ------------------------------------------------------
#
# FastAPI checks some of a request before any dependency runs (a JSON body is parsed first)
# and runs the routers' dependencies before the route's (one value per query parameter), so
# a request without valid credentials could be told what is wrong with its parameters (422)
# instead of being refused (401). Rather than authenticate twice per request, the error
# handlers (api.errors) ask :func:`caller_refusal` whenever an error is answered before the
# route established its caller: the refusal, if any, is the answer. A request that passes
# costs nothing more.

CALLER_CHECKED = "evidence.caller_checked"
"""Key of the request's scope set when the route starts to establish its caller: an error
from then on is the route's own answer (the check's refusal, or what follows it)."""

SignInCheck = Callable[[Request, Services], object]
"""Establish a request's caller as its route would, raising what the route would answer."""

_SIGN_IN_CHECKS: dict[Callable[..., Any], SignInCheck] = {}


def caller_checked(request: Request) -> None:
    """Record that ``request``'s route checks its caller (call first thing in the check)."""
    request.scope[CALLER_CHECKED] = True


def signs_in(check: SignInCheck) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated dependency as its routes' sign-in, established by ``check``
    when an error comes before it (the pages' session cookie). Routes taking a bearer token
    (an ``HTTPBearer`` dependency, as /openapi.json's ``security`` says) need no registration."""
    def register(dependency: Callable[..., Any]) -> Callable[..., Any]:
        _SIGN_IN_CHECKS[dependency] = check
        return dependency
    return register


def _bearer_check(request: Request, services: Services) -> object:
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme and token else None
    return identify(services, request, credentials)


def _sign_in_of(dependant: Dependant) -> SignInCheck | None:
    """How the route of ``dependant`` establishes its caller; None for a public route."""
    for sub in dependant.dependencies:
        if sub.call in _SIGN_IN_CHECKS:
            return _SIGN_IN_CHECKS[sub.call]
        if isinstance(sub.call, HTTPBearer):
            return _bearer_check
        found = _sign_in_of(sub)
        if found is not None:
            return found
    return None


async def caller_refusal(request: Request) -> Exception | None:
    """What the request's route answers its caller, for an error met before the route began
    to check it: the exception its sign-in raises (401, a lock-out's 429, the pages'
    redirect to sign in), else None (a public route, a caller already established, or
    credentials that hold: the error stands).

    Any exception of the check is returned, for the app's handler of its type to answer
    (an unreachable database is then its 503, not the parameters' 422)."""
    route = request.scope.get("route")
    if request.scope.get(CALLER_CHECKED) or not isinstance(route, APIRoute):
        return None
    check = _sign_in_of(route.dependant)
    if check is None:
        return None
    try:
        await run_in_threadpool(check, request, request.app.state.services)
    except Exception as exc:  # noqa: BLE001 - returned for its own handler (see above)
        return exc
    return None
