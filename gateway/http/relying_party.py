"""The WebAuthn relying party a request speaks for: its id (a host name) and its origin.

From the `public_url` setting when it is set (what people open the console at; the one right
answer behind a proxy), else from the request's own base URL. A passkey is bound to its relying
party: one registered at one origin signs nothing for another, so production sets `public_url`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

__all__ = ["relying_party"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def relying_party(request: Request, public_url: str = "") -> tuple[str, str]:
    """(rp_id, origin): the host name, and scheme://host[:port] (a default port left out)."""
    parts = urlsplit(public_url) if public_url else urlsplit(str(request.base_url))
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"no host name in {public_url or str(request.base_url)!r}")
    port = parts.port
    shown = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{shown}" if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{scheme}://{shown}:{port}"
    return host, origin
