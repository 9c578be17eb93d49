"""Hot policy reload seen from outside: a broken edit changes nothing but a failure counter, and
the fixed files become the active set with a `policy_activated` audit entry."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway_server import Server, audit, eventually, note, policies_with, server_config, start_server

NEW_RULE = '''
  deny greeting_in_note when params.body.contains("hello there")
      because "notes are for facts, not greetings"
'''


def scrape(server: Server) -> dict[str, Any]:
    """The active digest and the reload failure count from /metrics."""
    found: dict[str, Any] = {"failures": 0.0}
    for family in text_string_to_metric_families(server.client().get("/metrics").text):
        for sample in family.samples:
            if sample.name == "warden_policy_info":
                found["digest"] = sample.labels["digest"]
            elif sample.name == "warden_policy_reload_failures_total":
                found["failures"] = sample.value
    return found


def replace_file(path: Path, text: str) -> None:
    """Write `path` whole at once, as an editor saving does: the watcher polling it never reads a
    half-written file (which might compile, and be activated, as something nobody wrote)."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    os.replace(staged, path)


def decide(server: Server, body: str = "called the customer") -> dict[str, Any]:
    sent = note("a2")
    sent["action"]["params"]["body"] = body
    response = server.client("a2").post("/v1/actions", json=sent)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_broken_edit_keeps_the_last_good_set_until_it_is_fixed(db_url: str, tmp_path: Path) -> None:
    policies = policies_with(tmp_path)
    crm = policies / "crm.policy"
    original = crm.read_text()
    anchor = '  risk L0\n'
    assert anchor in original
    server, stop = start_server(server_config(db_url, tmp_path, policy_dir=policies,
                                              policy_reload=True, policy_poll_seconds=0.1))
    try:
        good = scrape(server)
        assert good["failures"] == 0
        first = decide(server)
        assert (first["status"], first["policy_digest"]) == ("executed", good["digest"])
        [initial] = audit(server, "policy_activated")
        assert initial["data"]["digest"] == good["digest"]

        # (1) A half-finished rule: the set does not compile; the last good one stays active.
        replace_file(crm, original.replace(anchor, anchor + "  deny greeting_in_note when\n"))
        eventually(lambda: scrape(server)["failures"] >= 1, "the failed reload to be counted")
        broken = scrape(server)
        assert (broken["digest"], broken["failures"]) == (good["digest"], 1)
        during = decide(server, "hello there, customer")
        assert (during["status"], during["policy_digest"]) == ("executed", good["digest"])
        assert len(audit(server, "policy_activated")) == 1

        # (2) The rule finished: the new set is recorded, then active, and decides.
        replace_file(crm, original.replace(anchor, anchor + NEW_RULE))
        fixed = eventually(lambda: (s := scrape(server))["digest"] != good["digest"] and s, "the fixed policies")
        assert fixed["failures"] == 1
        activated = audit(server, "policy_activated")
        assert [e["data"]["digest"] for e in activated] == [good["digest"], fixed["digest"]]
        after = decide(server, "hello there, customer")
        assert (after["status"], after["policy_digest"]) == ("denied", fixed["digest"])
        assert [r["rule"] for r in after["reasons"] if r["effect"] == "deny"] == ["greeting_in_note"]
        assert decide(server)["policy_digest"] == fixed["digest"]
    finally:
        stop()
