"""What every route takes from the app: the running gateway (`RuntimeDep`) and the id of a
decision in a path (`DecisionId`, as long as a decision id can be)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from gateway.runtime.runtime import Runtime

#: Decision ids are `dec_` and 26 characters; anything longer than this is no decision.
MAX_DECISION_ID = 64


async def current_runtime(request: Request) -> Runtime:
    """(A coroutine: FastAPI runs a plain function dependency on a worker thread.)"""
    runtime: Runtime = request.app.state.warden
    return runtime


RuntimeDep = Annotated[Runtime, Depends(current_runtime)]
DecisionId = Annotated[str, Path(max_length=MAX_DECISION_ID)]
