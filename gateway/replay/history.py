"""The recorded decisions and the policy sets they were made under, read from a gateway's
database or from an audit export (`warden audit export`), streamed in log order.

Both read the same thing, the log: a `decision` entry holds the packet, the decision as it was
recorded and its inputs (`gateway.engine.inputs`); a `policy_activated` entry holds the files of
the set it activates. The database also keeps the sets in `policy_sets`. Memory stays flat: the
log is read a page (database) or a block (export) at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import msgspec
from sqlalchemy import Engine, select

from gateway.store.policy_sets import list_policy_sets, load_policy_set
from gateway.store.schema import decisions
from ledger.database import read_only
from ledger.entry import parse_time
from ledger.export_layout import ENTRIES_FILE, entry_lines
from ledger.report import VerificationFailure
from ledger.store import Ledger

_DECISION = b'"kind":"decision"'
_ACTIVATED = b'"kind":"policy_activated"'
_REEVALUATION = b'"kind":"reevaluation"'
#: How far apart the clocks of processes appending to one log may be, for `--since`.
_CLOCK_SKEW = timedelta(minutes=1)
#: The entries that end a pending decision (after them no re-decision can follow).
_SETTLED = (b'"kind":"expiry"', b'"kind":"rejection"')


class HistoryError(Exception):
    """The history cannot be read: no such decision, an unreadable export, a malformed entry."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One `decision` entry: where it is in the log, and what it holds. A re-decision at the last
    approval (`reevaluation` entry) is one too, `kind` "reevaluation": its data is the packet, the
    decision as the entry records it (`policy_digest`, `status`, `risk`, `reasons`), its `inputs`
    and the OPA answers it was made with (`opa`)."""

    seq: int
    time: str
    decision_id: str
    data: dict[str, Any]
    kind: str = "decision"

    @property
    def packet(self) -> dict[str, Any]:
        packet: dict[str, Any] = self.data["packet"]
        return packet

    @property
    def decision(self) -> dict[str, Any]:
        decision: dict[str, Any] = self.data["decision"]
        return decision


@dataclass(frozen=True, slots=True)
class Window:
    """Which decisions to read: from a seq on, and/or from a time on."""

    from_seq: int = 0
    since: datetime | None = None


class History(Protocol):
    def decisions(self, window: Window = Window(), *, redecisions: bool = False) -> Iterator[Recorded]: ...
    def decision(self, decision_id: str) -> Recorded: ...
    def policy_files(self, digest: str) -> dict[str, str] | None: ...
    def policy_digests(self) -> list[tuple[str, str]]: ...


def _entry(raw: bytes) -> dict[str, Any]:
    try:
        entry = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise HistoryError(f"an entry is not JSON: {exc}") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
        raise HistoryError("an entry is not a JSON object with data")
    return entry


def _recorded(entry: dict[str, Any]) -> Recorded:
    data = entry["data"]
    if not isinstance(data.get("packet"), dict) or not isinstance(data.get("decision"), dict):
        raise HistoryError(f"decision entry {entry.get('seq')} holds no packet or decision")
    return Recorded(int(entry["seq"]), str(entry["time"]), str(entry["subject"]), data)


def _redecided(entry: dict[str, Any], packet: dict[str, Any]) -> Recorded:
    """A `reevaluation` entry that decided again (it has `inputs`), as a Recorded of its own."""
    note = entry["data"]
    decision = {"policy_digest": note.get("reevaluated_under"), "status": note.get("status"),
                "risk": note.get("risk"), "reasons": note.get("reasons")}
    data = {"packet": packet, "decision": decision, "inputs": note["inputs"], "opa": note.get("opa") or {}}
    return Recorded(int(entry["seq"]), str(entry["time"]), str(entry["subject"]), data, "reevaluation")


def _redecision(raw: bytes) -> dict[str, Any] | None:
    """The entry, if `raw` is a `reevaluation` that decided again (with recorded inputs)."""
    entry = _entry(raw)
    if entry.get("kind") != "reevaluation" or not isinstance(entry["data"].get("inputs"), dict):
        return None
    return entry


def _in_window(entry: dict[str, Any], window: Window) -> bool:
    if entry["seq"] < window.from_seq:
        return False
    return window.since is None or parse_time(entry["time"]) >= window.since


class DatabaseHistory:
    """A gateway's database (read-only transactions, keyset pages of the log)."""

    def __init__(self, engine: Engine, *, ledger: Ledger | None = None, page: int = 5_000) -> None:
        self.engine = engine
        self.ledger = ledger or Ledger()
        self.page = page

    def decisions(self, window: Window = Window(), *, redecisions: bool = False) -> Iterator[Recorded]:
        """The window's `decision` entries in log order; with `redecisions`, the re-decisions at
        the last approval among them."""
        start = max(window.from_seq, self._first_seq_since(window.since))
        with read_only(self.engine.connect()) as conn:
            for raw in self.ledger.iter_entries(conn, start, batch=self.page):
                if _DECISION in raw:
                    entry = _entry(raw)
                    if entry.get("kind") == "decision" and _in_window(entry, window):
                        yield _recorded(entry)
                elif redecisions and _REEVALUATION in raw:
                    found = _redecision(raw)
                    if found is not None and _in_window(found, window):
                        yield _redecided(found, self._packet(conn, str(found["subject"])))

    def _packet(self, conn: Any, decision_id: str) -> dict[str, Any]:
        row = conn.execute(select(decisions.c.packet).where(decisions.c.decision_id == decision_id)).first()
        if row is None:
            raise HistoryError(f"a re-decision names decision {decision_id}, which the database does not hold")
        packet: dict[str, Any] = json.loads(row.packet)
        return packet

    def _first_seq_since(self, since: datetime | None) -> int:
        """A seq before which no entry is at or after `since`: entries are appended in time
        order, so a binary search over a few entries finds it. It searches for a minute earlier
        (the processes of one database may write times a little out of order); every entry read
        is still filtered by its own time."""
        if since is None:
            return 0
        since = since - _CLOCK_SKEW
        with read_only(self.engine.connect()) as conn:
            low, high = 0, self.ledger.head(conn).size
            while low < high:
                middle = (low + high) // 2
                if parse_time(_entry(self.ledger.entry(conn, middle))["time"]) < since:
                    low = middle + 1
                else:
                    high = middle
            return low

    def decision(self, decision_id: str) -> Recorded:
        with read_only(self.engine.connect()) as conn:
            row = conn.execute(select(decisions.c.decision).where(decisions.c.decision_id == decision_id)).first()
            if row is None:
                raise HistoryError(f"no decision {decision_id}")
            seq = json.loads(row.decision).get("audit", {}).get("seq")
            if not isinstance(seq, int):
                raise HistoryError(f"decision {decision_id} has no audit entry")
            entry = _entry(self.ledger.entry(conn, seq))
        if entry.get("kind") != "decision" or entry.get("subject") != decision_id:
            raise HistoryError(f"audit entry {seq} is not decision {decision_id}'s")
        return _recorded(entry)

    def policy_files(self, digest: str) -> dict[str, str] | None:
        with read_only(self.engine.connect()) as conn:
            stored = load_policy_set(conn, digest)
        return None if stored is None else stored.files

    def policy_digests(self) -> list[tuple[str, str]]:
        with read_only(self.engine.connect()) as conn:
            kept = list_policy_sets(conn)
        return [(digest, datetime.fromtimestamp(at).astimezone().isoformat()) for digest, at in kept]


class ExportHistory:
    """An audit export's `entries.jsonl`, read with nothing of the gateway's database. Policy
    sets come from its `policy_activated` entries, collected as the file is read (a set is
    activated before any decision made under it)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / ENTRIES_FILE
        if not self.path.is_file():
            raise HistoryError(f"{directory}: not an audit export (no {ENTRIES_FILE})")
        self._sets: dict[str, dict[str, str]] = {}
        self._activated: list[tuple[str, str]] = []
        self._scanned = False

    def _lines(self) -> Iterator[bytes]:
        try:
            yield from entry_lines(self.path)
        except VerificationFailure as exc:
            raise HistoryError(f"{self.path}: {exc.message}") from None
        except OSError as exc:
            raise HistoryError(f"{self.path}: cannot read: {exc.strerror or exc}") from None

    def _note_set(self, raw: bytes) -> None:
        entry = _entry(raw)
        data = entry["data"]
        if entry.get("kind") != "policy_activated" or not isinstance(data.get("sources"), dict):
            return
        digest = str(data.get("digest"))
        if digest not in self._sets:
            self._sets[digest] = {str(k): str(v) for k, v in data["sources"].items()}
            self._activated.append((digest, str(entry["time"])))

    def decisions(self, window: Window = Window(), *, redecisions: bool = False) -> Iterator[Recorded]:
        """As `DatabaseHistory.decisions`. For re-decisions, the packets of the decisions still
        pending are kept while the file is read (the only ones a re-decision can follow)."""
        pending: dict[str, dict[str, Any]] = {}
        for raw in self._lines():
            if _ACTIVATED in raw:
                self._note_set(raw)
            elif _DECISION in raw:
                entry = _entry(raw)
                if entry.get("kind") != "decision":
                    continue
                recorded = _recorded(entry)
                if redecisions and recorded.decision.get("status") == "pending_approval":
                    pending[recorded.decision_id] = recorded.packet
                if _in_window(entry, window):
                    yield recorded
            elif redecisions and _REEVALUATION in raw:
                found = _redecision(raw)
                if found is None:
                    continue
                packet = pending.get(str(found["subject"]))
                if found["data"].get("outcome") != "still_pending":
                    pending.pop(str(found["subject"]), None)
                if packet is not None and _in_window(found, window):
                    yield _redecided(found, packet)
            elif redecisions and any(marker in raw for marker in _SETTLED):
                entry = _entry(raw)
                if entry.get("kind") in ("expiry", "rejection"):
                    pending.pop(str(entry.get("subject")), None)
        self._scanned = True

    def decision(self, decision_id: str) -> Recorded:
        wanted = json.dumps(decision_id).encode()
        for raw in self._lines():
            if _ACTIVATED in raw:
                self._note_set(raw)
            elif wanted in raw and _DECISION in raw:
                entry = _entry(raw)
                if entry.get("kind") == "decision" and entry.get("subject") == decision_id:
                    return _recorded(entry)
        raise HistoryError(f"no decision {decision_id} in {self.path.parent}")

    def _scan_sets(self) -> None:
        if not self._scanned:
            for raw in self._lines():
                if _ACTIVATED in raw:
                    self._note_set(raw)
            self._scanned = True

    def policy_files(self, digest: str) -> dict[str, str] | None:
        if digest not in self._sets:
            self._scan_sets()
        return self._sets.get(digest)

    def policy_digests(self) -> list[tuple[str, str]]:
        self._scan_sets()
        return list(self._activated)
