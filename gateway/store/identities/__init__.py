"""Agents and people: who may call Warden, and how they prove it.

    registry.py  what both share: tokens, lookups, the audited lifecycle, `IdentityError`
    agents.py    the agent registry (names unique regardless of case)
    users.py     people's accounts and their roles
    sessions.py  people signed in to the console
    accounts.py  console passwords, invites, throttled sign-in

Each agent and each user holds one bearer token: a prefix saying what it is for (`wdn_agent_`,
`wdn_user_`) and 32 random bytes (`secrets.token_urlsafe`). Warden keeps only its SHA-256, so a
copy of the database lets nobody in; authentication hashes the presented token and looks the hash
up through the table's unique index: one indexed select per request. A token is shown once, when
it is issued; neither the token nor its hash ever goes into an audit entry or a message.

Every change (register, change a field, rotate a token, revoke) writes its audit entry in the same
transaction as the row (`Ledger.append` in the caller's `engine.begin()`): kinds
`agent_registered`, `agent_changed` (`field`, `old`, `new`; a token rotation is field `token`
with both values null), `agent_revoked`, `user_added`, `user_changed` (a console password is
field `password`, both values null), `user_invited`, `user_revoked`.
Names are never reused: a revoked agent or user keeps its row, so the log's names stay unambiguous.

Errors: `IdentityError` with a stable `code` (see `ERROR_CODES`) and a message for humans.
"""

from gateway.store.identities.accounts import (
    INVITE_TOKEN_PREFIX,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    LoginRefused,
    check_password,
    create_invite,
    invite_email,
    redeem_invite,
    set_password,
    sign_in,
)
from gateway.store.identities.agents import (
    AgentRecord,
    add_agent,
    authenticate_agent,
    get_agent,
    list_agents,
    parse_autonomy,
    revoke_agent,
    rotate_agent_token,
    set_autonomy,
    set_owner,
    set_tools,
)
from gateway.store.identities.registry import (
    AGENT_TOKEN_PREFIX,
    ERROR_CODES,
    USER_TOKEN_PREFIX,
    IdentityError,
    Registration,
    new_token,
    token_digest,
)
from gateway.store.identities.sessions import (
    ConsoleSession,
    end_session,
    end_sessions_for,
    peek_session,
    purge_stale,
    session_for,
    start_session,
)
from gateway.store.identities.users import (
    ROLES,
    Role,
    User,
    UserRecord,
    add_user,
    authenticate_user,
    get_user,
    list_users,
    normalise_email,
    parse_role,
    revoke_user,
    rotate_user_token,
    set_role,
)

__all__ = [
    "AGENT_TOKEN_PREFIX",
    "ERROR_CODES",
    "INVITE_TOKEN_PREFIX",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "ROLES",
    "USER_TOKEN_PREFIX",
    "AgentRecord",
    "ConsoleSession",
    "IdentityError",
    "LoginRefused",
    "Registration",
    "Role",
    "User",
    "UserRecord",
    "add_agent",
    "add_user",
    "authenticate_agent",
    "authenticate_user",
    "check_password",
    "create_invite",
    "end_session",
    "end_sessions_for",
    "peek_session",
    "purge_stale",
    "get_agent",
    "get_user",
    "invite_email",
    "list_agents",
    "list_users",
    "new_token",
    "normalise_email",
    "parse_autonomy",
    "parse_role",
    "redeem_invite",
    "revoke_agent",
    "revoke_user",
    "rotate_agent_token",
    "rotate_user_token",
    "session_for",
    "set_autonomy",
    "set_owner",
    "set_password",
    "set_role",
    "set_tools",
    "sign_in",
    "start_session",
    "token_digest",
]
