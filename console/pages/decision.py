"""One decision, with everything an approver needs to say yes or no, and the approve and reject
forms (plain forms; htmx swaps the status panel in place).

An executed action whose tool can be undone also offers Undo to those who may compensate: a
confirmation step names the compensating action the pipeline plans, then the pipeline's
`compensate` submits it (once, whoever asks) and its decision's page opens. The two decisions
link to each other: the original through the compensation's reserved `packet_id`, the
compensation through its reserved `context.compensation.of`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from console import explain, present, queries
from console.auth import Viewer, acting_as, form_of, signed_in
from console.render import is_htmx, page, root, runtime_of
from console.pages.account import MAX_CREDENTIAL_JSON, relying_party_of
from gateway.pipeline.approvals import PasskeyAssertion, Person
from gateway.pipeline.compensate import compensation_packet_id
from gateway.pipeline.errors import NotPending, PipelineError
from gateway.store import passkeys
from gateway.store.identities import IdentityError, get_agent
from ledger.database import read_only

router = APIRouter()

MAX_TEXT = 2000
#: The answer's status for a refusal, by the pipeline's error code (409 for the rest: a conflict
#: with the decision's state, such as an approval given twice or one that came too late).
REFUSAL_STATUS = {"decision_not_found": 404, "not_permitted": 403, "role_not_allowed": 403, "own_agent": 403,
                  "passkey_required": 403, "passkey_invalid": 403}


def _context(request: Request, viewer: Viewer, decision_id: str) -> dict[str, Any]:
    runtime = runtime_of(request)
    if len(decision_id) > 64:
        raise HTTPException(404, "no such decision")
    with read_only(runtime.db.connect()) as conn:
        row = queries.decision(conn, decision_id)
        if row is None:
            raise HTTPException(404, f"no decision {decision_id}")
        recent = queries.recent(conn, row.agent, row.tool, exclude=decision_id)
        try:
            agent = get_agent(conn, row.agent)
        except IdentityError:
            agent = None
        has_passkey = _has_passkey(conn, viewer.email)
        compensation = queries.by_packet(conn, row.agent, compensation_packet_id(decision_id))
        compensates = present.compensates(row.packet)
        original = queries.decision(conn, compensates) if compensates else None
    policy_set, _decider = runtime.policies.current()
    policy_dir = Path(runtime.settings.policy_dir)
    reasons = [(reason, explain.rule_source(policy_set, policy_dir, reason.policy, reason.rule))
               for reason in row.decision.reasons]
    spec = runtime.registry.spec(row.tool)
    owner = agent.agent.owner if agent is not None else None
    needs_passkey = has_passkey or (row.decision.risk.name == "L3" and runtime.settings.passkeys_required_for_l3)
    return {
        "row": row, "d": row.decision, "packet": row.packet, "params": present.param_rows(row.params),
        "evidence": present.flatten(row.packet.get("evidence", {})), "context_rows": present.flatten(row.packet.get("context", {})),
        "reasons": reasons, "active_digest": policy_set.digest, "spec": spec, "agent": agent,
        "matrix": present.matrix(row.decision.autonomy.name, row.decision.risk.name), "recent": recent,
        "standing": explain.standing(viewer, row.decision, owner, needs_passkey=needs_passkey, has_passkey=has_passkey),
        "needs_passkey": needs_passkey, "section": "inbox",
        "compensation": compensation, "compensates": compensates, "original": original,
        "undoable": row.decision.status == "executed" and spec is not None and spec.reversible and not compensates,
    }


def _has_passkey(conn: Any, email: str) -> bool:
    return passkeys.has_passkey(conn, email)


@router.get("/decisions/{decision_id}", name="decision")
def decision_page(request: Request, decision_id: str, viewer: Annotated[Viewer, Depends(signed_in)],
                  done: str | None = None) -> Response:
    return page(request, "decision.html", viewer, notice=_notice(done), error=None,
                **_context(request, viewer, decision_id))


@router.get("/decisions/{decision_id}/panel", name="decision_panel")
def decision_panel(request: Request, decision_id: str, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return page(request, "_decision_panel.html", viewer, notice=None, error=None, **_context(request, viewer, decision_id))


def _notice(done: str | None) -> str | None:
    return {"approved": "Your approval is recorded.", "rejected": "The decision is rejected.",
            "compensated": "Your undo is recorded as this compensating action, decided under the policies like any "
                           "other.",
            "undone": "This action was undone already: this is its compensating action."}.get(done or "")


async def _decide(request: Request, viewer: Viewer, decision_id: str, verb: str) -> Response:
    form = await form_of(request)
    runtime = runtime_of(request)
    person = Person(email=viewer.email, role=viewer.role)
    text = (form.get("comment") if verb == "approve" else form.get("reason")) or ""
    text = text.strip()
    error, status = None, 422
    if len(text) > MAX_TEXT:
        error = f"at most {MAX_TEXT} characters, please"
    elif verb == "reject" and not text:
        error = "say why you reject it: the agent and the audit log keep the reason"
    if error is None:
        try:
            if verb == "approve":
                await run_in_threadpool(_approve, runtime, person, decision_id, text or None, form.get("passkey"),
                                        request)
            else:
                await run_in_threadpool(runtime.approvals.reject, person, decision_id, text)
        except NotPending as exc:  # another person (or the expiry) got there first
            error, status = f"Too late: {exc.message} now, settled while you were looking; your " \
                            f"{'approval' if verb == 'approve' else 'rejection'} was not recorded.", 409
        except PipelineError as exc:
            error, status = exc.message, REFUSAL_STATUS.get(exc.code, 409)
        # Wake the agents long-polling this decision now, as the API's approve and reject do;
        # otherwise they see the change only at their next periodic re-read (up to 250 ms later).
        runtime.changes.notify(decision_id)
    if error is None and not is_htmx(request):
        done = "approved" if verb == "approve" else "rejected"
        return RedirectResponse(f"{root(request)}/decisions/{decision_id}?done={done}", status_code=303)
    context = await run_in_threadpool(_context, request, viewer, decision_id)
    template = "_decision_panel.html" if is_htmx(request) else "decision.html"
    notice = None if error else _notice("approved" if verb == "approve" else "rejected")
    return await run_in_threadpool(lambda: page(request, template, viewer, status=status if error else 200,
                                                notice=notice, error=error, message_oob=is_htmx(request),
                                                **context))


def _approve(runtime: Any, person: Person, decision_id: str, comment: str | None, passkey: str | None,
             request: Request) -> Any:
    signed = None
    if passkey:
        rp_id, origin = relying_party_of(request)
        signed = PasskeyAssertion(passkey[:MAX_CREDENTIAL_JSON], rp_id, origin)
    return runtime.approvals.approve(person, decision_id, comment, signed)


@router.post("/decisions/{decision_id}/passkey-options")
async def passkey_options(request: Request, decision_id: str,
                          viewer: Annotated[Viewer, Depends(acting_as("decide"))]) -> Response:
    """The `navigator.credentials.get()` options whose challenge is this approval itself."""
    runtime = runtime_of(request)
    rp_id, _origin = relying_party_of(request)
    try:
        options = await run_in_threadpool(runtime.approvals.approval_options, Person(viewer.email, viewer.role),
                                          decision_id[:64], rp_id)
    except PipelineError as exc:
        return JSONResponse({"error": exc.message}, status_code=404)
    return Response(options, media_type="application/json")


@router.post("/decisions/{decision_id}/approve")
async def approve(request: Request, decision_id: str,
                  viewer: Annotated[Viewer, Depends(acting_as("decide"))]) -> Response:
    return await _decide(request, viewer, decision_id, "approve")


@router.post("/decisions/{decision_id}/reject")
async def reject(request: Request, decision_id: str,
                 viewer: Annotated[Viewer, Depends(acting_as("decide"))]) -> Response:
    return await _decide(request, viewer, decision_id, "reject")


@router.post("/decisions/{decision_id}/compensate")
async def compensate(request: Request, decision_id: str,
                     viewer: Annotated[Viewer, Depends(acting_as("compensate"))]) -> Response:
    """Undo: without `confirm=yes` the confirmation (what will run); with it, the compensation."""
    if len(decision_id) > 64:
        raise HTTPException(404, "no such decision")
    form = await form_of(request)
    runtime = runtime_of(request)
    try:
        existing = await run_in_threadpool(_compensation_of, runtime, decision_id)
        if existing is not None:  # asked before (by anyone): that compensation, not a second one
            return _opened(request, existing, "undone")
        if form.get("confirm") != "yes":  # the confirmation step: what the pipeline would submit
            _original, _agent, planned = await run_in_threadpool(runtime.compensations.plan, decision_id)
            context = await run_in_threadpool(_context, request, viewer, decision_id)
            return await run_in_threadpool(lambda: page(
                request, "compensate.html", viewer, planned=planned.action,
                planned_params=present.param_rows(planned.action.params), **context))
        made = await run_in_threadpool(runtime.compensations.compensate, Person(viewer.email, viewer.role),
                                       decision_id)
    except PipelineError as exc:
        error, status = exc.message, REFUSAL_STATUS.get(exc.code, 409)
    else:
        runtime.changes.notify(decision_id)  # as the API's compensate does
        return _opened(request, made.decision_id or decision_id, "compensated")
    context = await run_in_threadpool(_context, request, viewer, decision_id)
    return await run_in_threadpool(lambda: page(request, "decision.html", viewer, status=status, notice=None,
                                                error=error, **context))


def _compensation_of(runtime: Any, decision_id: str) -> str | None:
    """The id of the decision compensating `decision_id`, if one was asked for."""
    with read_only(runtime.db.connect()) as conn:
        row = queries.decision(conn, decision_id)
        found = queries.by_packet(conn, row.agent, compensation_packet_id(decision_id)) if row else None
    return found.decision_id if found else None


def _opened(request: Request, decision_id: str, done: str) -> Response:
    return RedirectResponse(f"{root(request)}/decisions/{decision_id}?done={done}", status_code=303)
