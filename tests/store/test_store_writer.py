"""The one writer: a unit of work commits whole or not at all, and on PostgreSQL it holds the
audit log's head from its first statement (the lock order every writer shares)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import OperationalError

from gateway.store.schema import gateway_state, upgrade
from gateway.store.writer import Writer
from ledger.database import make_engine
from ledger.store import Ledger


class Refused(Exception):
    """What the failing unit raises."""


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["inline", "background"])
def writer(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Writer]:
    writer = Writer(engine, Ledger(), background=request.param == "background")
    try:
        yield writer
    finally:
        writer.close()


def _state_and_size(engine: Engine) -> tuple[list[str], int]:
    with engine.connect() as conn:
        keys = list(conn.execute(select(gateway_state.c.key).order_by(gateway_state.c.key)).scalars())
        return keys, Ledger().head(conn).size


def test_a_failed_unit_writes_nothing(writer: Writer, engine: Engine) -> None:
    def failing(conn: Connection) -> None:
        conn.execute(gateway_state.insert().values(key="half", value="{}"))
        writer.ledger.append(conn, "kill_switch", "test", "kill_switch", {"engaged": True})
        raise Refused("the unit gives up after its first writes")

    with pytest.raises(Refused):
        writer.run(failing)
    assert _state_and_size(engine) == ([], 0)

    def whole(conn: Connection) -> int:
        conn.execute(gateway_state.insert().values(key="whole", value="{}"))
        return writer.ledger.append(conn, "kill_switch", "test", "kill_switch", {"engaged": False}).seq

    assert writer.run(whole) == 0
    assert _state_and_size(engine) == (["whole"], 1)


def test_a_unit_holds_the_log_head_before_its_first_statement(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    try:
        def probe(_conn: Connection) -> None:
            with engine.connect() as other, pytest.raises(OperationalError, match="could not obtain lock"):
                other.execute(text("SELECT size FROM ledger_head FOR UPDATE NOWAIT"))

        Writer(engine, Ledger()).run(probe)
    finally:
        engine.dispose()
