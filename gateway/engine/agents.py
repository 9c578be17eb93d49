"""An agent as Warden's registry knows it.

The autonomy level and the owner come from the registry (set by the agent's owner with
`warden agents add`), never from the packet: a packet only names its agent, and the gateway checks
that name against the authenticated token before the engine ever sees the packet.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from dsl.model import Autonomy
from gateway.engine.models import AgentName, AutonomyName

ToolGlob = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9_.*?\[\]!-]+$")]


class Agent(BaseModel):
    """A registered agent: who it is, how far it may act alone, who answers for it.

    `tools` are globs (`stripe.*`, `crm.log_note`) naming the tools the agent may call at all;
    no globs means no tools. `owner` is the person who answers for the agent; nobody approves an
    action of an agent they own.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AgentName
    autonomy: AutonomyName
    owner: str | None = None
    tools: tuple[ToolGlob, ...] = ()

    def may_use(self, tool: str) -> bool:
        """Whether one of the agent's tool globs covers `tool` (checked by the gateway)."""
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.tools)

    def cel_view(self) -> dict[str, Any]:
        """What policies see as `agent`: name, autonomy name (`"A2"`) and owner."""
        return {"name": self.name, "autonomy": self.autonomy.name, "owner": self.owner}


__all__ = ["Agent", "Autonomy"]
