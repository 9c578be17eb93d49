"""Helpers for the MCP front's tests: the `mcp` SDK's own client over streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from gateway_server import Server
from own_thread import on_own_thread

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body on an event loop of its own, on a thread of its own (the server
    runs on yet another thread)."""
    return on_own_thread(lambda: anyio.run(main))


@asynccontextmanager
async def http_session(server: Server, token: str | None) -> AsyncIterator[ClientSession]:
    """An initialised MCP client session over streamable HTTP, with `token` as bearer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (httpx2.AsyncClient(headers=headers, timeout=60) as http,
                streamable_http_client(server.base_url + "/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")
