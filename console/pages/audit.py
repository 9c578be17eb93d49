"""Audit: the latest checkpoint, the active policy digest, the policy activations, an export to
download (the same folder `warden audit export` writes, as a .tar.gz) and inclusion proofs."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, Response

from console.auth import Viewer, allowed, signed_in
from console.render import page, runtime_of
from gateway.pipeline.audit import inclusion_proof
from gateway.pipeline.errors import OutOfRange
from ledger.database import read_only
from ledger.checkpoint import open_checkpoint
from ledger.keys import signing_keys
from ledger.note import NoteError, Verifier
from ledger.schema import checkpoints, entries

router = APIRouter()

#: How far back the page looks for policy activations.
ACTIVATIONS_WINDOW = 20_000


def _checkpoint(conn: Any, now: float) -> dict[str, Any] | None:
    """The latest signed checkpoint as stored (size, key id, time), its root as the note itself
    gives it once its signature verifies under one of the log's keys; None before the first."""
    latest = conn.execute(select(checkpoints.c.note, checkpoints.c.size, checkpoints.c.key_id, checkpoints.c.signed_at)
                          .order_by(checkpoints.c.size.desc()).limit(1)).first()
    if latest is None:
        return None
    verifiers = [Verifier.from_string(key.verifier_key) for key in signing_keys(conn)]
    try:
        root = open_checkpoint(latest.note, verifiers).root.hex()
    except NoteError:
        root = None  # shown as not verifying: the tamper check raises its own alarm
    return {"size": latest.size, "key_id": latest.key_id, "root": root, "note": latest.note,
            "age": max(0.0, now - latest.signed_at)}


def _activations(conn: Any) -> list[dict[str, Any]]:
    rows = conn.execute(select(entries.c.seq, entries.c.body).order_by(entries.c.seq.desc())
                        .limit(ACTIVATIONS_WINDOW)).all()
    found = []
    for seq, body in rows:
        if b'"kind":"policy_activated"' not in bytes(body):
            continue
        entry = json.loads(bytes(body))
        found.append({"seq": seq, "time": entry.get("time"), "actor": entry.get("actor"), "data": entry.get("data", {})})
        if len(found) >= 50:
            break
    return found


@router.get("/audit", name="audit")
def audit(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    runtime = runtime_of(request)
    with read_only(runtime.db.connect()) as conn:
        checkpoint = _checkpoint(conn, runtime.clock())
        size = runtime.ledger.head(conn).size
        activations = _activations(conn)
    return page(request, "audit.html", viewer, checkpoint=checkpoint, size=size, digest=runtime.policies.digest,
                activations=activations, verifier_key=runtime.signer.verifier_key, section="audit",
                window=ACTIVATIONS_WINDOW)


def _export(runtime: Any) -> tuple[Path, str]:
    from ledger.export import export_log

    work = Path(tempfile.mkdtemp(prefix="warden-export-"))
    folder = work / "warden-audit-export"
    try:
        export_log(runtime.db, folder, ledger=runtime.ledger)
        archive = work / "warden-audit-export.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return archive, str(work)


@router.get("/audit/export", name="audit_export")
async def export(request: Request, viewer: Annotated[Viewer, Depends(allowed("export"))]) -> Response:
    from ledger.export import ExportError

    runtime = runtime_of(request)
    try:
        archive, work = await run_in_threadpool(_export, runtime)
    except ExportError as exc:
        return await run_in_threadpool(lambda: page(request, "error.html", viewer, status=409,
                                                    title="No export yet", message=str(exc)))
    return FileResponse(archive, media_type="application/gzip", filename=archive.name,
                        background=BackgroundTask(shutil.rmtree, work, True))


@router.get("/audit/proof", name="audit_proof")
def proof(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
          seq: Annotated[int, Query(ge=0, le=2**53)], size: Annotated[int | None, Query(ge=1, le=2**53)] = None,
          download: bool = False) -> Response:
    runtime = runtime_of(request)
    try:
        body = inclusion_proof(runtime.audit.inclusion(seq, size))
    except OutOfRange as exc:
        raise HTTPException(404, exc.message) from None
    if download:
        return JSONResponse(body, headers={"Content-Disposition": f'attachment; filename="inclusion-{seq}.json"'})
    return page(request, "proof.html", viewer, seq=seq, proof=json.dumps(body, indent=2, default=str), section="audit")


__all__ = ["router"]
