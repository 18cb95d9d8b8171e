"""Errors of the archive core.

Every error a caller can meet derives from :class:`ArchiveError`; each carries a
machine-readable ``code``, the HTTP status the API answers with, and a human message.
Entry points (the API error handler, the CLI) catch only the root.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Root of every error the archive reports to a person or a program."""

    code = "archive_error"
    status = 400
    extra: dict | None = None
    """More machine-readable fields of the error object (e.g. ``reasons``), or None."""
    transient = False
    """True when the same work can succeed later unchanged (an outage, a busy database):
    background work backs off and retries instead of failing."""
    no_system_fault = False
    """True when the failure is no new fault of the system and its reason is shown to those who
    asked: the request's own (an export of a case with nothing to export), or one whose cause
    is counted where it lies (an export of an item whose processing gave up: that item's work
    stays ``failed``). Background work that meets it ends there, logged as a warning, instead
    of staying ``failed``, so ``/healthz`` counts each fault an operator must look at once."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NotFound(ArchiveError):
    """The thing asked for does not exist, or the caller may not know that it does."""

    code = "not_found"
    status = 404


class Forbidden(ArchiveError):
    """The caller is known but their role or unit does not allow this."""

    code = "forbidden"
    status = 403


class Unauthenticated(ArchiveError):
    """No valid credentials were presented."""

    code = "unauthenticated"
    status = 401


class TooManyAttempts(ArchiveError):
    """Too many failed sign-ins or invalid credentials from one client or for one account;
    nothing is checked until ``retry_after`` seconds have passed (429, Retry-After)."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Conflict(ArchiveError):
    """The request contradicts the archive's state (duplicate number, hash mismatch...)."""

    code = "conflict"
    status = 409


class CaseClosed(Conflict):
    """The case is closed: its vault accepts no new evidence (reopen it first)."""

    code = "case_closed"


class InvalidInput(ArchiveError):
    """The request is well-formed HTTP but its content cannot be accepted."""

    code = "invalid_input"
    status = 422


class RangeNotSatisfiable(InvalidInput):
    """A well-formed byte range that selects nothing of an object of ``size`` bytes (416;
    the API names the size in ``Content-Range: bytes */size``)."""

    code = "range_not_satisfiable"
    status = 416

    def __init__(self, message: str, *, size: int):
        super().__init__(message)
        self.size = size


class HashMismatch(Conflict):
    """The bytes received do not have the hash the client declared; nothing was kept."""

    code = "hash_mismatch"


class IdempotencyKeyInUse(Conflict):
    """A request with this Idempotency-Key is still being processed; retry once it has answered."""

    code = "idempotency_key_in_use"


class IdempotencyKeyReused(InvalidInput):
    """This Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"


class UploadIncomplete(ArchiveError):
    """The upload ended before all of its bytes arrived; nothing was kept."""

    code = "upload_incomplete"
    status = 400


class UploadStalled(UploadIncomplete):
    """The upload's body stopped arriving for longer than the server waits; nothing was kept
    (a tus upload keeps what arrived, to resume)."""

    code = "upload_stalled"
    status = 408


class VerificationFailed(ArchiveError):
    """A verification found something that does not hold; the message names it."""

    code = "verification_failed"
    status = 409


class LedgerTampered(VerificationFailed):
    """The custody ledger's chain or tree does not recompute."""

    code = "ledger_tampered"


class StorageError(ArchiveError):
    """Root of object-store failures (translated from the backend's own errors)."""

    code = "storage_error"
    status = 503


class ObjectNotFound(StorageError):
    """The object store has no object under this key (or version)."""

    code = "object_not_found"
    status = 404


class ObjectExists(StorageError):
    """An object already exists under this key; originals are never overwritten."""

    code = "object_exists"
    status = 409


class ObjectLocked(StorageError):
    """The object is under retention; the store refuses to delete or change it."""

    code = "object_locked"
    status = 409


class StoreUnavailable(StorageError):
    """The object store cannot be reached or answered with a server error."""

    code = "store_unavailable"
    status = 503
    transient = True


class StoreFull(StorageError):
    """The disk the object store or the upload staging writes to has no space left (or the
    quota is used up). Nothing was kept; the request can be repeated once an administrator
    has freed space (503, Retry-After)."""

    code = "store_full"
    status = 503
    transient = True
    retry_after = 60


class DatabaseBusy(ArchiveError):
    """The database did not answer in time (locked past its timeout, pool exhausted or
    unreachable). Nothing was changed; the request can be repeated (503, Retry-After)."""

    code = "database_busy"
    status = 503
    transient = True
    retry_after = 2


class DatabaseFull(DatabaseBusy):
    """The database's disk is full: it cannot write (SQLite's "database or disk is full",
    PostgreSQL's ``disk_full``). Nothing was changed; the request can be repeated once an
    administrator has freed space (503, Retry-After)."""

    code = "database_full"
    retry_after = 60


class UploadsBusy(ArchiveError):
    """Every upload slot of the API process is taken by bodies still arriving, and none came
    free in time. Nothing was kept; the upload can be repeated (503, Retry-After)."""

    code = "uploads_busy"
    status = 503
    transient = True
    retry_after = 30


class ConfigurationError(ArchiveError):
    """Settings are missing or contradictory; the service refuses to start."""

    code = "configuration_error"
    status = 500
