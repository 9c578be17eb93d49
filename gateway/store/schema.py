"""The gateway's tables, beside the ledger's, with their own versioned migrations.

`upgrade(engine)` brings both the ledger and the gateway tables to their latest versions
(`warden db upgrade` and `warden serve` call it). Times are UNIX seconds (float, UTC); JSON
documents are stored as text exactly as served.

- `agents`      name → autonomy, owner, tool globs, SHA-256 of the bearer token, revoked_at.
                A name is unique regardless of case: a unique index on `lower(name)` (version 2).
- `users`       email → role, SHA-256 of the API token, revoked_at; the console password as an
                argon2id hash, null until one is set (version 3).
- `decisions`   one row per accepted packet: (agent, packet_id) is unique (the idempotency key),
                the packet and its hash, the current status and the whole decision JSON as served.
                Indexed on (created_at, decision_id) and (agent, created_at) for the console's
                lists (version 4).
- `approvals`   (decision_id, approver) → role, comment, time: one person counts once.
- `executions`  the outbox: written in the decision's transaction; a worker claims a row with a
                lease, calls the connector with the decision id as idempotency key and records the
                outcome. `state`: pending → running → succeeded | failed. The first call's time
                and whether the last outcome is unknown (version 5).
- `incidents`   proof mismatches, connector failures, repeated denials, tamper alarms,
                idempotency conflicts, executions left unresolved.
                Acknowledged in the console: acknowledged_at and _by (version 3).
- `gateway_state` small named documents (the kill switch).
- `invites`     one-time links to set a console password: SHA-256 of the token → email, expiry,
                used_at (version 3).
- `console_sessions` people signed in to the console: SHA-256 of the cookie token → email, CSRF
                token, created, last seen, ended_at, the address signed in from (version 3).
- `login_failures` failed sign-ins counted per scope (`account:EMAIL`, `address:IP`): how many
                since first_at, and blocked_until once over the limit (version 3).
- `passkeys`    WebAuthn credentials: id (base64url) → email, COSE public key, sign count, the
                relying party and origin registered with, revoked_at (version 3).
- `webhook_endpoints` registered receivers of events: id → URL, kinds, signing secret, state
                (active | disabled), the seq after which its events start, the head delivery's
                consecutive failures and next attempt, and a lease for one sender (version 6).
- `webhook_deliveries` the durable delivery outbox: (endpoint, seq) → kind, decision, state
                (pending | delivered), attempts (version 6). Payloads are rebuilt from the log.
- `webhook_attempts` every delivery attempt: when, the HTTP status or the error, how long it took
                (version 6). The fan-out's cursor is `gateway_state` `webhook_cursor`.
- `policy_sets` every policy set ever activated, by digest: its files (path → text, as JSON) and
                when it was first activated (version 7). The same files are in the
                `policy_activated` entry, so an export carries them too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Index,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.schema import CreateColumn

from ledger import schema as ledger_schema

COMPONENT = "gateway"
metadata = MetaData()

agents = Table(
    "agents",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("autonomy", SmallInteger, nullable=False),
    Column("owner", String(254), nullable=True),
    Column("tools", Text, nullable=False),  # JSON list of globs
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("email", String(254), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("password_hash", Text, nullable=True),  # argon2id; version 3
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(40), primary_key=True),
    Column("agent", String(64), nullable=False),
    Column("packet_id", String(128), nullable=False),
    Column("packet_hash", String(71), nullable=False),
    Column("tool", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("risk", SmallInteger, nullable=False),
    Column("policy_digest", String(71), nullable=False),
    Column("packet", Text, nullable=False),  # the validated packet, JSON
    Column("decision", Text, nullable=False),  # the Decision as served, JSON
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),  # pending approvals only
    UniqueConstraint("agent", "packet_id", name="uq_decisions_agent_packet"),
)
Index("ix_decisions_status_expires", decisions.c.status, decisions.c.expires_at)
# Version 4: the console's lists, newest first and paged by key; an agent's latest decisions.
Index("ix_decisions_created", decisions.c.created_at, decisions.c.decision_id)
Index("ix_decisions_agent_created", decisions.c.agent, decisions.c.created_at)

approvals = Table(
    "approvals",
    metadata,
    Column("decision_id", String(40), primary_key=True),
    Column("approver", String(254), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("comment", Text, nullable=True),
    Column("approved_at", Float, nullable=False),
)

executions = Table(
    "executions",
    metadata,
    Column("decision_id", String(40), primary_key=True),
    Column("tool", String(128), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("state", String(16), nullable=False),  # pending | running | succeeded | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("result", Text, nullable=True),  # JSON: external id, summary (no secrets)
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("first_attempt_at", Float, nullable=True),  # version 5: the first call with the key
    # version 5: the last attempt's outcome is unknown (a timeout, a crash mid-call): the next
    # claim reconciles with the provider before it sends anything
    Column("outcome_unknown", SmallInteger, nullable=False, server_default="0"),
)
Index("ix_executions_state_next", executions.c.state, executions.c.next_attempt_at)

incidents = Table(
    "incidents",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("agent", String(64), nullable=True),
    Column("decision_id", String(40), nullable=True),
    Column("summary", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON
    Column("created_at", Float, nullable=False),
    Column("audit_seq", BigInteger, nullable=True),
    Column("acknowledged_at", Float, nullable=True),  # version 3
    Column("acknowledged_by", String(254), nullable=True),  # version 3
)
Index("ix_incidents_created", incidents.c.created_at)

gateway_state = Table(
    "gateway_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
)

policy_sets = Table(
    "policy_sets",
    metadata,
    Column("digest", String(80), primary_key=True),  # sha256:<hex>
    Column("files", Text, nullable=False),  # JSON {relative path: UTF-8 text}
    Column("activated_at", Float, nullable=False),  # first activation
)

invites = Table(
    "invites",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("created_by", String(254), nullable=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("address", String(64), nullable=True),
)
Index("ix_console_sessions_email", console_sessions.c.email)

login_failures = Table(
    "login_failures",
    metadata,
    Column("scope", String(320), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("blocked_until", Float, nullable=True),
)

passkeys = Table(
    "passkeys",
    metadata,
    Column("credential_id", String(512), primary_key=True),  # base64url
    Column("email", String(254), nullable=False),
    Column("public_key", Text, nullable=False),  # base64url COSE key
    Column("sign_count", BigInteger, nullable=False),
    Column("rp_id", String(253), nullable=False),
    Column("origin", String(512), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("audit_seq", BigInteger, nullable=True),
)
Index("ix_passkeys_email", passkeys.c.email)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("kinds", Text, nullable=False),  # JSON list of event kinds
    Column("secret", Text, nullable=False),  # whsec_…: signs every delivery (Standard Webhooks)
    Column("state", String(16), nullable=False),  # active | disabled
    Column("from_seq", BigInteger, nullable=False),  # events of entries after this one
    Column("created_at", Float, nullable=False),
    Column("created_by", String(254), nullable=False),
    Column("disabled_at", Float, nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("failures", Integer, nullable=False, server_default="0"),  # of the head delivery, in a row
    Column("next_attempt_at", Float, nullable=False, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("endpoint_id", String(40), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("decision_id", String(40), nullable=True),
    Column("state", String(16), nullable=False),  # pending | delivered
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
Index("ix_webhook_deliveries_state", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.state,
      webhook_deliveries.c.seq)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("endpoint_id", String(40), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=False),
)
Index("ix_webhook_attempts_delivery", webhook_attempts.c.endpoint_id, webhook_attempts.c.seq)

#: The tables version 3 creates, and the columns it adds to tables that already existed.
_VERSION_3_TABLES = (invites, console_sessions, login_failures, passkeys)
_VERSION_3_COLUMNS = (users.c.password_hash, incidents.c.acknowledged_at, incidents.c.acknowledged_by)


def _create_gateway_tables(conn: Connection) -> None:
    """Version 1."""
    metadata.create_all(conn)


AGENT_NAME_INDEX = "uq_agents_name_lower"


def _unique_agent_names_regardless_of_case(conn: Connection) -> None:
    """Version 2: `Refund-Bot` and `refund-bot` are one agent. The names are compared lowercased,
    so a lookup by any case uses the same index. A registry that already holds names differing
    only in case cannot get the index: the upgrade stops and names them."""
    folded = func.lower(agents.c.name)
    clashing = select(folded).group_by(folded).having(func.count() > 1)
    names = sorted(conn.execute(select(agents.c.name).where(folded.in_(clashing))).scalars(),
                   key=lambda name: (name.lower(), name))  # the same order whatever the collation
    if names:
        raise ledger_schema.SchemaError(
            "agent names must be unique regardless of case, and these differ only in case: "
            f"{', '.join(map(repr, names))}; keep one name of each group (rename or delete the other rows "
            "of the `agents` table) and run `warden db upgrade` again"
        )
    conn.execute(text(f"CREATE UNIQUE INDEX {AGENT_NAME_INDEX} ON agents (lower(name))"))


def _console_accounts(conn: Connection) -> None:
    """Version 3: people sign in to the console. `users.password_hash`, the acknowledgement of
    an incident, and the tables `invites`, `console_sessions`, `login_failures`, `passkeys`.

    Version 1 creates whatever `metadata` holds, so on a database created by this release these
    already exist: each column and table is added only if it is missing."""
    _add_missing_columns(conn, _VERSION_3_COLUMNS)
    for new in _VERSION_3_TABLES:
        new.create(conn, checkfirst=True)  # with its indexes


#: The indexes version 4 adds to `decisions`.
_VERSION_4_INDEXES = ("ix_decisions_created", "ix_decisions_agent_created")


def _decision_list_indexes(conn: Connection) -> None:
    """Version 4: indexes for the console's reads of `decisions`. The activity page orders by
    (created_at, decision_id) and pages by that key; a decision's page reads the agent's latest
    decisions; the agents page each agent's latest time. Without them each is a scan and a sort
    of the whole table (720 ms for the first activity page at 100,000 decisions on SQLite,
    `bench/console_pages.py`). On a database version 1 created from these tables they exist."""
    by_name = {str(index.name): index for index in decisions.indexes}
    for name in _VERSION_4_INDEXES:
        by_name[name].create(conn, checkfirst=True)


#: The columns version 5 adds to `executions`.
_VERSION_5_COLUMNS = (executions.c.first_attempt_at, executions.c.outcome_unknown)


def _execution_outcomes(conn: Connection) -> None:
    """Version 5: live connectors. An execution remembers when its first call left (a provider
    keeps an idempotency key for a limited time) and whether its last outcome is unknown (to be
    reconciled before anything is sent again). Added only if missing (version 1 creates them)."""
    _add_missing_columns(conn, _VERSION_5_COLUMNS)


def _add_missing_columns(conn: Connection, columns: tuple[Column[Any], ...]) -> None:
    found = inspect(conn)
    for column in columns:
        table = column.table.name
        if column.name not in {c["name"] for c in found.get_columns(table)}:
            spec = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {spec}"))


#: The tables version 6 creates.
_VERSION_6_TABLES = (webhook_endpoints, webhook_deliveries, webhook_attempts)


def _webhooks(conn: Connection) -> None:
    """Version 6: webhook endpoints, their delivery outbox and its attempts (created if missing:
    version 1 creates them on a database this release made)."""
    for new in _VERSION_6_TABLES:
        new.create(conn, checkfirst=True)


def _policy_sets(conn: Connection) -> None:
    """Version 7: the policy sets by digest (created if missing: version 1 creates it on a
    database this release made)."""
    policy_sets.create(conn, checkfirst=True)


# Append only; never edit a released migration. The list index + 1 is the schema version.
MIGRATIONS: list[ledger_schema.Migration] = [
    _create_gateway_tables, _unique_agent_names_regardless_of_case, _console_accounts, _decision_list_indexes,
    _execution_outcomes, _webhooks, _policy_sets,
]
LATEST_VERSION = len(MIGRATIONS)


def upgrade(engine: Engine) -> dict[str, tuple[int, int]]:
    """Create or upgrade the ledger's and the gateway's tables; (before, after) per component."""
    return {
        ledger_schema.COMPONENT: ledger_schema.upgrade(engine),
        COMPONENT: ledger_schema.upgrade_component(engine, COMPONENT, MIGRATIONS),
    }


def require_current(conn: Connection) -> None:
    """Fail closed when the tables are missing or from another version."""
    ledger_schema.require_current(conn)
    found = ledger_schema.current_version(conn, COMPONENT)
    if found != LATEST_VERSION:
        raise ledger_schema.SchemaError(
            f"the gateway schema is version {found}, expected {LATEST_VERSION}; run `warden db upgrade`"
        )
