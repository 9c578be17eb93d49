"""The kill switch: a founder engages it (with a reason) or releases it; anyone may read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool

from gateway.engine.matrix import FOUNDER
from gateway.http.auth import ANYONE, Principal, require
from gateway.http.body import read_model
from gateway.http.deps import RuntimeDep
from gateway.http.openapi import SMALL_BODY_CODES, json_body
from gateway.http.problems import problem_responses
from gateway.http.views import KillSwitchState
from gateway.pipeline.approvals import Person

router = APIRouter(tags=["operations"])


class KillSwitchBody(BaseModel):
    """`engaged` is a JSON boolean; a reason is required to engage, optional to release."""

    model_config = ConfigDict(extra="forbid")

    engaged: StrictBool
    reason: Annotated[str | None, Field(min_length=1, max_length=2000, validate_default=True)] = None

    @field_validator("reason")
    @classmethod
    def _reason_to_engage(cls, reason: str | None, info: ValidationInfo) -> str | None:
        if reason is not None and not reason.strip():
            raise PydanticCustomError("reason_blank", "a reason must say something: it is blank")
        if reason is None and info.data.get("engaged") is True:
            raise PydanticCustomError("reason_required", "a reason is required to engage the kill switch")
        return reason


@router.post("/v1/kill-switch", response_model=KillSwitchState,
             openapi_extra=json_body(KillSwitchBody, required=True),
             responses=problem_responses("missing_token", "invalid_token", "forbidden_role", *SMALL_BODY_CODES))
async def kill_switch(request: Request, runtime: RuntimeDep, who: Principal = Depends(require(FOUNDER))) -> KillSwitchState:
    """Engage (`{"engaged": true, "reason": ...}`) or release (`{"engaged": false}`, a reason
    optional) the kill switch. While engaged nothing executes and new packets are denied."""
    body = await read_model(request, KillSwitchBody, required=True)
    assert body is not None
    state = await run_in_threadpool(runtime.approvals.set_kill_switch, Person(who.name, who.role), body.engaged, body.reason)
    runtime.changes.notify_all()
    return KillSwitchState.of(state)


@router.get("/v1/kill-switch", response_model=KillSwitchState)
def kill_switch_state(runtime: RuntimeDep, who: Principal = Depends(require(*ANYONE))) -> KillSwitchState:
    return KillSwitchState.of(runtime.approvals.kill_switch())
