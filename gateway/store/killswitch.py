"""The kill switch: one row of `gateway_state`, read on every decision and before every execution.

While engaged, new packets are denied (the engine's `kill_switch` gate), nothing executes (the
outbox worker checks before each call), and approvals are still recorded but their decisions stay
pending until a founder releases the switch and the last approval is re-evaluated.

A founder engages and releases it (`POST /v1/kill-switch`); Warden itself engages it on a tamper
alarm (`gateway.runtime.tamper`). Every change is a `kill_switch` audit entry by whoever made it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, insert, select, update

from gateway.store.schema import gateway_state
from ledger.store import Ledger

KEY = "kill_switch"


@dataclass(frozen=True)
class KillSwitch:
    engaged: bool = False
    reason: str | None = None
    by: str | None = None
    at: float | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


RELEASED = KillSwitch()


_READ = select(gateway_state.c.value).where(gateway_state.c.key == KEY)


def read_kill_switch(conn: Connection) -> KillSwitch:
    return parse_kill_switch(conn.execute(_READ).scalar_one_or_none())


def parse_kill_switch(raw: str | None) -> KillSwitch:
    """The state from its stored JSON (None: never set, released)."""
    return RELEASED if raw is None else KillSwitch(**json.loads(raw))


#: `read_kill_switch` as plain SQL, for the log writer, which reads it once per batch.
KILL_SWITCH_SQL = f"SELECT value FROM {gateway_state.name} WHERE key = '{KEY}'"


def write_kill_switch(conn: Connection, state: KillSwitch) -> None:
    value = json.dumps(state.to_json(), separators=(",", ":"))
    done = conn.execute(update(gateway_state).where(gateway_state.c.key == KEY).values(value=value))
    if done.rowcount == 0:
        conn.execute(insert(gateway_state).values(key=KEY, value=value))


def set_kill_switch(
    conn: Connection, ledger: Ledger, *, engaged: bool, reason: str | None, by: str, now: float
) -> KillSwitch:
    """Engage or release the switch and record it (a `kill_switch` entry by `by`), in the
    caller's transaction; returns the new state."""
    state = KillSwitch(engaged=engaged, reason=reason, by=by, at=now)
    write_kill_switch(conn, state)
    ledger.append(conn, "kill_switch", by, KEY, {"engaged": engaged, "reason": reason})
    return state
