"""The audit ledger's tables and the versioned migrations that create them.

Warden owns its schema: `warden db upgrade` (and the gateway at start-up) runs `upgrade(engine)`,
which applies, in order, every migration newer than the version recorded in `warden_schema`.
Each migration runs in one transaction together with the version bump, under a lock that keeps two
processes starting at once from racing (PostgreSQL: a transaction-scoped advisory lock; SQLite:
the write lock taken by `BEGIN IMMEDIATE`). Running it again is a no-op.

Tables:

- `ledger_entries`   seq → the exact entry bytes (RFC 8785 JSON) and their RFC 6962 leaf hash.
- `ledger_nodes`     node_key(level, index) = level·2^48 + index → hash of the complete, aligned
                     subtree covering leaves [index·2^level, (index+1)·2^level), for level ≥ 1 (level 0 is the leaf hash
                     in `ledger_entries`). Proofs and old roots are read from here, never recomputed.
- `ledger_head`      one row: tree size, last leaf hash, the compact range ("frontier": the roots
                     of the perfect subtrees that make up the tree, left to right). Every append
                     locks this row first, which serialises writers into one gap-free sequence.
- `ledger_checkpoints` size → signed note text, signing key id, wall time it was signed.
- `ledger_keys`      the signing keys in the order the log used them; a key signs the checkpoints
                     of size > `from_size` (0 for the first key; s+1 after a rotation at seq s,
                     whose checkpoint of size s+1 is the old key's last).
- `warden_schema`    component → schema version.
"""

from __future__ import annotations

from collections.abc import Callable

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
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

COMPONENT = "ledger"
_ADVISORY_LOCK_ID = 0x5741_5244_454E  # "WARDEN": serialises migrations across processes

metadata = MetaData()

schema_versions = Table(
    "warden_schema",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("body", LargeBinary, nullable=False),
)

nodes = Table(
    "ledger_nodes",
    metadata,
    Column("node", BigInteger, primary_key=True, autoincrement=False),  # node_key(level, index)
    Column("hash", LargeBinary(32), nullable=False),
)

NODE_LEVEL_SHIFT = 48  # room for 2**48 subtrees per level; levels stay below 64


def node_key(level: int, index: int) -> int:
    """The `ledger_nodes` key of subtree (level, index): one integer, so a proof's nodes are
    fetched with a single `node IN (...)` on the primary key."""
    return (level << NODE_LEVEL_SHIFT) | index

head = Table(
    "ledger_head",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("last_leaf", LargeBinary(32), nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)

checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("key_id", String(8), nullable=False),
    Column("signed_at", Float, nullable=False),
)

keys = Table(
    "ledger_keys",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("verifier_key", Text, nullable=False, unique=True),
    Column("key_id", String(8), nullable=False),
    Column("from_size", BigInteger, nullable=False),
)

HEAD_ID = 1
NO_PREVIOUS_LEAF = bytes(32)  # `prev` of seq 0 is 64 zero hex digits


def _create_ledger_tables(conn: Connection) -> None:
    """Version 1: the whole ledger, and the empty head row every append will lock."""
    metadata.create_all(conn, tables=[entries, nodes, head, checkpoints, keys])
    conn.execute(insert(head).values(id=HEAD_ID, size=0, last_leaf=NO_PREVIOUS_LEAF, frontier=b""))


Migration = Callable[[Connection], None]

# Append only; never edit a released migration. The list index + 1 is the schema version.
MIGRATIONS: list[Migration] = [_create_ledger_tables]
LATEST_VERSION = len(MIGRATIONS)


def current_version(conn: Connection, component: str = COMPONENT) -> int:
    """The version recorded for `component`, 0 when the schema was never created."""
    if not conn.dialect.has_table(conn, schema_versions.name):
        return 0
    found = conn.execute(
        select(schema_versions.c.version).where(schema_versions.c.component == component)
    ).scalar_one_or_none()
    return int(found) if found is not None else 0


def _take_migration_lock(conn: Connection) -> None:
    """Keep two processes from running the same migration at once."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    # SQLite: the engine from `ledger.database` begins every transaction IMMEDIATE, which already
    # holds the database's single write lock.


def upgrade(engine: Engine) -> tuple[int, int]:
    """Bring the ledger schema to the latest version; returns (version before, version after)."""
    return upgrade_component(engine, COMPONENT, MIGRATIONS)


def upgrade_component(
    engine: Engine, component: str, migrations: list[Migration]
) -> tuple[int, int]:
    """Apply, in one locked transaction, every migration of `component` newer than the version
    recorded for it; returns (version before, version after). Other components (the gateway's
    tables) keep their own migration lists and versions in the same `warden_schema` table."""
    latest = len(migrations)
    with engine.begin() as conn:
        _take_migration_lock(conn)
        schema_versions.create(conn, checkfirst=True)
        before = current_version(conn, component)
        if before > latest:
            raise SchemaError(
                f"the database has {component} schema version {before}, newer than this Warden "
                f"understands ({latest}); upgrade Warden"
            )
        for version in range(before + 1, latest + 1):
            migrations[version - 1](conn)
        if before == 0:
            conn.execute(insert(schema_versions).values(component=component, version=latest))
        elif before != latest:
            conn.execute(
                update(schema_versions)
                .where(schema_versions.c.component == component)
                .values(version=latest)
            )
    return before, latest


def require_current(conn: Connection) -> None:
    """Fail closed when the ledger tables are missing or from another version."""
    found = current_version(conn)
    if found != LATEST_VERSION:
        raise SchemaError(
            "the database has no audit ledger yet; run `warden db upgrade`"
            if found == 0
            else f"the ledger schema is version {found}, expected {LATEST_VERSION}; "
            "run `warden db upgrade`"
        )


def is_missing_table(exc: DBAPIError) -> bool:
    """Whether a database error means "this table does not exist" (schema never created)."""
    code = getattr(exc.orig, "sqlstate", None)
    return code == "42P01" or "no such table" in str(exc.orig)


class SchemaError(Exception):
    """The database's schema is missing or not the version this code expects."""
