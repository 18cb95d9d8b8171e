"""Trust material and the built-in time-stamping authority.

``GET /api/v1/trust/chain.pem`` is public: certificates are not secrets, and a court
must be able to fetch the chain without an account.

``POST /tsa`` is the built-in RFC 3161 TSA (application/timestamp-query in,
application/timestamp-reply out). It takes no credentials because RFC 3161 clients
(``openssl ts``, pyHanko, PDF tools) send none; it signs only hashes, so anyone using it
learns nothing and can only obtain time-stamps from our development TSA key. It is the
embedded default's TSA; in production mode it answers 404 unless ``EVIDENCE_SERVE_TSA``
is set with a TSA certificate and key.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import ServicesDep, SessionDep
from api.schemas import ErrorResponse
from archive.seals.registry import published_chain_pem
from archive.errors import ArchiveError, InvalidInput, NotFound

router = APIRouter(prefix="/api/v1/trust", tags=["trust"])
tsa_router = APIRouter(tags=["trust"])

MAX_TSA_REQUEST = 64 * 1024


@router.get("/chain.pem", responses={200: {"content": {"application/pem-certificate-chain": {}}}})
def chain_pem(session: SessionDep, services: ServicesDep) -> Response:
    """Root CA, every e-seal certificate that ever sealed (retired ones too), and the TSA certificate(s)."""
    return Response(published_chain_pem(session, services.sealer), media_type="application/pem-certificate-chain")


class UnsupportedMediaType(ArchiveError):
    code = "unsupported_media_type"
    status = 415


@tsa_router.post(
    "/tsa",
    responses={200: {"content": {"application/timestamp-reply": {}}}, 404: {"model": ErrorResponse},
               413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
)
async def tsa(request: Request, services: ServicesDep) -> Response:
    """RFC 3161 time-stamping (built-in TSA). Malformed queries get an RFC 3161 rejection, not an HTTP error."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/timestamp-query":
        raise UnsupportedMediaType("send an RFC 3161 query as application/timestamp-query")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_TSA_REQUEST:
            raise InvalidInput("time-stamp query too large", code="too_large", status=413)
    settings = services.settings
    if settings.mode == "production" and not settings.serve_tsa:
        raise NotFound("the built-in TSA is not served in production (EVIDENCE_SERVE_TSA)", code="tsa_disabled")
    sealer = await run_in_threadpool(lambda: services.sealer)  # may create the development PKI
    authority = sealer.builtin_tsa
    if authority is None:
        raise NotFound("no built-in TSA is configured", code="tsa_disabled")
    reply = await run_in_threadpool(authority.respond, bytes(body))
    return Response(reply, media_type="application/timestamp-reply")
