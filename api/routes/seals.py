"""Item seals (manifest, CAdES, SM2) and sealed ledger checkpoints.

Reading an item's manifest or seals is a read of evidence, so each is a custody entry.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select

from api.deps import MAX_DB_INT, CurrentUser, ServicesDep, SessionDep, record_read
from api.routes import ledger as ledger_routes
from api.schemas import CheckpointProofLinks, CheckpointPublic, ErrorResponse
from archive.evidence import items as evidence_service
from archive.custody.checkpoints import checkpoint_public, checkpoint_statement, latest_checkpoint
from archive.errors import NotFound
from archive.models import Checkpoint, EvidenceItem
from archive.identity.users import CASE_READERS, require_role

router = APIRouter(prefix="/api/v1/evidence", tags=["seals"])
checkpoints_router = APIRouter(prefix="/api/v1/ledger/checkpoints", tags=["ledger"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404)}


def _sealed_object(session, services, user, item_id: str, role: str) -> tuple[EvidenceItem, bytes]:  # type: ignore[no-untyped-def]
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    derived = next((d for d in item.derived if d.role == role), None)
    if derived is None:
        raise NotFound(f"item {item_id} has no {role} yet (seal_status {item.seal_status})", code="not_sealed")
    record_read(services, session, user=user, item=item, purpose=evidence_service.READ_PURPOSES.say("seal", role=role))
    # The recorded version, never whatever was written over the key later.
    data = b"".join(services.store.read(derived.storage_key, version_id=derived.storage_version))
    return item, data


@router.get("/{item_id}/manifest", responses={**ERRORS, 200: {"content": {"application/json": {}}}})
def get_manifest(item_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> Response:
    """The item's canonical manifest: exactly the bytes the seals sign."""
    item, data = _sealed_object(session, services, user, item_id, "manifest")
    return Response(data, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{item.id}.manifest.json"'})


@router.get("/{item_id}/seals/cades", responses={**ERRORS, 200: {"content": {"application/pkcs7-signature": {}}}})
def get_cades(item_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> Response:
    """The detached CAdES-B-T seal over the manifest (DER CMS).

    ``openssl cms -verify -binary -inform DER -in SEAL -content MANIFEST -CAfile root.pem``
    """
    item, data = _sealed_object(session, services, user, item_id, "cades")
    return Response(data, media_type="application/pkcs7-signature",
                    headers={"Content-Disposition": f'attachment; filename="{item.id}.manifest.p7s"'})


@router.get("/{item_id}/seals/sm2", responses=ERRORS)
def get_sm2(item_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """The SM2/SM3 seal over the manifest: signature (base64 DER), algorithm, public key, certificate, distinguishing id."""
    _item, data = _sealed_object(session, services, user, item_id, "sm2")
    return json.loads(data)


def _published(cp: Checkpoint) -> CheckpointPublic:
    """A checkpoint as served: what it publishes, and where to get proofs against it."""
    previous = checkpoint_statement(cp).get("previous")
    proof = ledger_routes.router.prefix + "/proof"
    return CheckpointPublic(**checkpoint_public(cp), proofs=CheckpointProofLinks(
        inclusion=f"{proof}/inclusion?tree_size={cp.tree_size}&seq={{seq}}",
        consistency_from_previous=(
            f"{proof}/consistency?old_size={previous['tree_size']}&new_size={cp.tree_size}" if previous else None
        ),
        consistency_to_current=f"{proof}/consistency?old_size={cp.tree_size}",
    ))


@checkpoints_router.get("", responses=ERRORS)
def list_checkpoints(
    session: SessionDep, user: CurrentUser,
    start: Annotated[int, Query(ge=0, le=MAX_DB_INT, description="Smallest tree size")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CheckpointPublic]:
    """Sealed checkpoints in tree-size order: statement, CAdES (base64), SM2 seal, proof links."""
    require_role(user, CASE_READERS, doing="read ledger checkpoints")
    rows = session.execute(
        select(Checkpoint).where(Checkpoint.tree_size >= start).order_by(Checkpoint.tree_size).limit(limit)
    ).scalars()
    return [_published(cp) for cp in rows]


@checkpoints_router.get("/latest", responses=ERRORS)
def latest(session: SessionDep, user: CurrentUser) -> CheckpointPublic:
    """The newest sealed checkpoint."""
    require_role(user, CASE_READERS, doing="read ledger checkpoints")
    cp = latest_checkpoint(session)
    if cp is None:
        raise NotFound("no checkpoint has been sealed yet", code="no_checkpoint")
    return _published(cp)
