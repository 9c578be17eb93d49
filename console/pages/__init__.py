"""One router per console page; `ROUTERS` is the order they are included in."""

from __future__ import annotations

from console.pages import account, activity, agents, audit, decision, inbox, incidents, killswitch, signin, stream

ROUTERS = [signin.router, inbox.router, decision.router, activity.router, incidents.router, killswitch.router,
           agents.router, audit.router, account.router, stream.router]
