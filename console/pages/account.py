"""The signed-in person's account: their passkeys, added and revoked.

Registering a passkey is two requests from the page's script: the creation options (their
challenge is derived from the session's secret CSRF token, so nothing is kept between the two
requests and a response made for another session does not verify), then the authenticator's
response, checked and stored with a `passkey_registered` audit entry (`gateway.store.passkeys`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from console.auth import Viewer, acting_as, form_of, signed_in
from console.render import page, root, runtime_of
from gateway.store import passkeys
from ledger.database import read_only

router = APIRouter()

MAX_CREDENTIAL_JSON = 64 * 1024


def registration_challenge(viewer: Viewer) -> bytes:
    return hashlib.sha256(b"warden.passkey.registration.v1\n" + viewer.csrf_token.encode()).digest()


def relying_party_of(request: Request) -> tuple[str, str]:
    return passkeys.relying_party(str(request.base_url).removesuffix(root(request) + "/"),
                                  runtime_of(request).settings.public_url)


@router.get("/account", name="account")
def account(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], error: str | None = None) -> Response:
    with read_only(runtime_of(request).db.connect()) as conn:
        mine = passkeys.list_passkeys(conn, viewer.email)
    return page(request, "account.html", viewer, passkeys=mine, error=error, section="account")


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/account/passkeys/options")
async def registration_options(request: Request, viewer: Annotated[Viewer, Depends(acting_as("passkeys"))]) -> Response:
    runtime = runtime_of(request)
    rp_id, _origin = relying_party_of(request)

    def read() -> str:
        with read_only(runtime.db.connect()) as conn:
            options, _challenge = passkeys.registration_options(
                conn, viewer.email, viewer.email, rp_id, "Warden", challenge=registration_challenge(viewer))
        return options

    return Response(await run_in_threadpool(read), media_type="application/json")


@router.post("/account/passkeys")
async def register(request: Request, viewer: Annotated[Viewer, Depends(acting_as("passkeys"))]) -> Response:
    body = await request.body()
    if len(body) > MAX_CREDENTIAL_JSON:
        return _problem(413, "the passkey response is too large")
    try:
        credential = json.loads(body).get("credential")
    except (ValueError, AttributeError):
        credential = None
    if not isinstance(credential, dict):
        return _problem(422, "send {\"credential\": <the authenticator's response>}")
    runtime = runtime_of(request)
    rp_id, origin = relying_party_of(request)

    def work(conn: Any) -> str:
        return passkeys.register_passkey(conn, runtime.ledger, viewer.email, json.dumps(credential),
                                         registration_challenge(viewer), rp_id, origin, runtime.clock())

    try:
        credential_id = await run_in_threadpool(runtime.writer.run, work)
    except passkeys.PasskeyError as exc:
        return _problem(422, str(exc))
    return JSONResponse({"credential_id": credential_id}, status_code=201)


@router.post("/account/passkeys/{credential_id}/revoke")
async def revoke(request: Request, credential_id: str,
                 viewer: Annotated[Viewer, Depends(acting_as("passkeys"))]) -> Response:
    runtime = runtime_of(request)
    if (await form_of(request)).get("confirm") != "yes":
        return RedirectResponse(f"{root(request)}/account", status_code=303)
    try:
        await run_in_threadpool(runtime.writer.run, lambda conn: passkeys.revoke_passkey(
            conn, runtime.ledger, viewer.email, credential_id[:600], viewer.email, runtime.clock()))
    except passkeys.PasskeyError as exc:
        return await run_in_threadpool(lambda: account(request, viewer, error=str(exc)))
    return RedirectResponse(f"{root(request)}/account", status_code=303)
