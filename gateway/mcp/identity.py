"""Who an agent token belongs to, for the MCP front: Warden's agent tokens are its bearer tokens.

Looked up by SHA-256 in the agent registry (`gateway.store.identities.authenticate_agent`), on a
worker thread, with recent answers cached for a moment (`gateway.store.tokens`) as the HTTP API
does; a revoked or rotated token stops working within that moment. Only agents act through MCP:
a person's token is no agent's and is refused.
"""

from __future__ import annotations

import asyncio
import hashlib

from sqlalchemy import Engine

from gateway.engine.agents import Agent
from gateway.store.identities import authenticate_agent
from gateway.store.tokens import TokenCache
from ledger.database import read_only

AGENT_TOKEN_PREFIX = "wdn_agent_"


class AgentTokens:
    """Agent tokens → agents, over one database."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._cache: TokenCache[Agent] = TokenCache()

    def agent(self, token: str) -> Agent | None:
        """The agent holding `token`; None for an unknown, revoked or rotated token, or a person's."""
        if not token.startswith(AGENT_TOKEN_PREFIX):
            return None
        key = _key(token)
        if (hit := self._cache.get(key)) is not None:
            return hit
        with read_only(self.db.connect()) as conn:
            found = authenticate_agent(conn, token)
        if found is not None:
            self._cache.put(key, found)
        return found

    async def agent_async(self, token: str) -> Agent | None:
        """`agent`, answered here from the cache; only a miss reads the database, on a thread."""
        if not token.startswith(AGENT_TOKEN_PREFIX):
            return None
        if (hit := self._cache.get(_key(token))) is not None:
            return hit
        return await asyncio.to_thread(self.agent, token)


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
