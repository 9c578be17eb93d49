"""What a decision entry records for replay, and how entries from before `inputs` existed are
replayed: the policy set in its activation entry and kept by digest, the inputs read back, a
reconstruction said to be one, malformed inputs refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dsl.shipped import builtin_policy_dir
from gateway.engine.agents import Agent
from gateway.engine.inputs import InputsError, inputs_record, recorded_inputs
from gateway.replay.history import DatabaseHistory, Recorded
from gateway.replay.replay import Replayer
from gateway_server import audit
from history_support import History


def test_inputs_read_back_exactly() -> None:
    agent = Agent(name="bot", autonomy="A3", owner="o@x.test", tools=("*",))
    now = datetime(2026, 12, 7, 10, 11, 12, 345678, tzinfo=UTC)
    data = {"inputs": inputs_record(agent, now, True, timedelta(hours=4))}
    assert data["inputs"]["now"] == "2026-12-07T10:11:12.345678Z"
    back = recorded_inputs(data, "2026-12-07T10:11:13.000000Z")
    assert (back.now, back.kill_switch, back.approval_expiry, back.reconstructed) == (now, True, timedelta(hours=4), False)
    assert back.agent.cel_view() == agent.cel_view()


@pytest.mark.parametrize("inputs", [
    {"now": "yesterday", "kill_switch": False, "agent": {"name": "bot", "autonomy": "A2"}, "approval_expiry_seconds": 1},
    {"now": "2026-12-07T10:11:12", "kill_switch": False, "agent": {"name": "bot", "autonomy": "A2"}, "approval_expiry_seconds": 1},
    {"now": "2026-12-07T10:11:12Z", "kill_switch": False, "agent": {"name": "bot", "autonomy": "A9"}, "approval_expiry_seconds": 1},
    {"now": "2026-12-07T10:11:12Z", "kill_switch": False, "agent": "bot", "approval_expiry_seconds": 1},
    {"now": "2026-12-07T10:11:12Z", "kill_switch": False, "agent": {"name": "bot", "autonomy": "A2"}},
])
def test_malformed_inputs_are_refused(inputs: dict) -> None:
    with pytest.raises(InputsError):
        recorded_inputs({"inputs": inputs}, "2026-12-07T10:11:12.000000Z")


def test_the_activation_entry_carries_the_set_and_the_database_keeps_it(recorded: History) -> None:
    entries = audit(recorded.server, "policy_activated")
    assert [e["data"]["digest"] for e in entries] == [recorded.decisions[0]["policy_digest"],
                                                      recorded.decisions[-1]["policy_digest"]]
    first = entries[0]["data"]
    shipped = {p.name: p.read_text(encoding="utf-8") for p in sorted(builtin_policy_dir().glob("*.policy"))}
    assert first["sources"] == shipped and first["files"] == sorted(shipped)
    assert first["grammar"].startswith("sha256:")
    history = DatabaseHistory(recorded.server.runtime.db)
    assert history.policy_files(first["digest"]) == shipped
    assert [d for d, _at in history.policy_digests()] == [e["data"]["digest"] for e in entries]


def test_an_entry_without_inputs_replays_from_a_reconstruction(recorded: History) -> None:
    history = DatabaseHistory(recorded.server.runtime.db)
    replayer = Replayer(history)
    executed = next(d for d in recorded.decisions if d["status"] == "executed")
    entry = history.decision(executed["decision_id"])
    old = Recorded(entry.seq, entry.time, entry.decision_id, {k: v for k, v in entry.data.items() if k != "inputs"})
    result = replayer.replay(old)
    assert result.reconstructed and result.to_json()["inputs"] == "reconstructed"
    assert result.verdict == "identical"  # nothing in this decision depends on the exact instant

    pending = next(d for d in recorded.decisions if d["status"] == "pending_approval")
    entry = history.decision(pending["decision_id"])
    old = Recorded(entry.seq, entry.time, entry.decision_id, {k: v for k, v in entry.data.items() if k != "inputs"})
    result = replayer.replay(old)
    # the approval's expiry is counted from the entry's time, a moment after the decision
    assert result.reconstructed and [d.field for d in result.differences] in ([], ["approval"])

    unknown = {**entry.data, "decision": {**entry.data["decision"], "policy_digest": "sha256:" + "0" * 64}}
    lost = replayer.replay(Recorded(entry.seq, entry.time, entry.decision_id, unknown))
    assert lost.verdict == "not_replayable" and "is not kept" in (lost.problem or "")


def test_a_redecision_at_the_last_approval_replays_and_a_changed_record_differs(recorded: History) -> None:
    history = DatabaseHistory(recorded.server.runtime.db)
    replayer = Replayer(history)
    redecided = [r for r in history.decisions(redecisions=True) if r.kind == "reevaluation"]
    assert redecided, "the history has approvals that decided again"
    for one in redecided:
        result = replayer.replay(one)
        assert result.verdict == "identical", result.to_json()
        assert set(result.to_json()["replayed"]) == {"policy_digest", "status", "risk", "reasons"}
    first = redecided[0]
    altered = {**first.data, "decision": {**first.decision, "status": "denied", "risk": "L0"}}
    result = replayer.replay(Recorded(first.seq, first.time, first.decision_id, altered, first.kind))
    assert result.verdict == "different"
    assert [d.field for d in result.differences] == ["risk", "status"]
