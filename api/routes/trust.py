"""Trust material and the built-in time-stamping authority.

``GET /api/v1/trust/chain.pem`` is public: certificates are not secrets, and a court
must be able to fetch the chain without an account.

``GET /api/v1/trust/evidence-verifier.tar.gz`` is public too: the offline verifier's source
package, the one every export's certificate tells a court to install (``pip install`` it), so
a court clerk gets it from the archive that made the export rather than from a code
repository they do not have. It holds code only, no data.

``POST /tsa`` is the built-in RFC 3161 TSA (application/timestamp-query in,
application/timestamp-reply out). It takes no credentials because RFC 3161 clients
(``openssl ts``, pyHanko, PDF tools) send none; it signs only hashes, so anyone using it
learns nothing and can only obtain time-stamps from our development TSA key. It is the
embedded default's TSA; in production mode it answers 404 unless ``EVIDENCE_SERVE_TSA``
is set with a TSA certificate and key.
"""

from __future__ import annotations

import functools
import io
import tarfile
import tomllib
from pathlib import Path

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


VERIFIER_SOURCE = Path(__file__).resolve().parents[2] / "verifier"
"""The offline verifier's own distribution (pyproject.toml, README.md, evidence_verify/)."""


@functools.lru_cache(maxsize=1)
def verifier_package() -> tuple[str, bytes]:
    """The verifier's source package (an sdist ``pip`` installs): its file name and bytes, made
    once, the same bytes each time (files in order, no times or owners)."""
    meta = tomllib.loads((VERIFIER_SOURCE / "pyproject.toml").read_text("utf-8"))["project"]
    base = f"{meta['name']}-{meta['version']}"
    files = [VERIFIER_SOURCE / "pyproject.toml", VERIFIER_SOURCE / "README.md",
             *sorted((VERIFIER_SOURCE / "evidence_verify").rglob("*.py"))]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{base}/{path.relative_to(VERIFIER_SOURCE).as_posix()}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", out.getvalue()


@router.get("/evidence-verifier.tar.gz", responses={200: {"content": {"application/gzip": {}}}, 404: {"model": ErrorResponse}})
def verifier_download() -> Response:
    """The offline verifier to install where exports are checked (``pip install`` this file):
    public, like the chain (code only)."""
    if not (VERIFIER_SOURCE / "pyproject.toml").is_file():
        raise NotFound("this installation does not carry the verifier's source", code="verifier_not_bundled")
    name, data = verifier_package()
    return Response(data, media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


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
