"""`warden replay` and `GET /v1/actions/{id}/replay`: every recorded decision of a generated
history (two policy sets, a kill switch, every autonomy level) decides again identically, from
the database and from an audit export; a policy set altered where it is kept is caught."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update

from cli_support import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, warden
from dsl.shipped import builtin_policy_dir
from gateway.store.schema import policy_sets
from gateway_server import audit
from history_support import History


def _db(history: History) -> str:
    return history.server.runtime.settings.database_url


def test_the_generated_history_is_varied(recorded: History) -> None:
    statuses = {d["status"] for d in recorded.decisions}
    assert {"executed", "pending_approval", "denied", "drafted"} <= statuses
    assert len(recorded.digests) == 2
    assert any(r["rule"] == "kill_switch" for d in recorded.decisions for r in d["reasons"])


def _redecisions(history: History) -> int:
    """The re-decisions at a last approval the history holds (each replayed by --all too)."""
    return sum(1 for e in audit(history.server, "reevaluation") if "inputs" in e["data"])


def test_replay_all_finds_every_decision_identical(recorded: History, tmp_path: Path) -> None:
    done = warden("replay", "--all", "--db", _db(recorded), cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    again = _redecisions(recorded)
    assert again > 0, "the history has approvals that decided again"
    count = len(recorded.decisions) + again
    assert (f"{count} decision(s) replayed ({again} of them re-decisions at the last approval): {count} "
            "identical, 0 different, 0 not replayable") in done.stdout


def test_one_decision_replays_identically_with_its_inputs(recorded: History, tmp_path: Path) -> None:
    pending = recorded.of_status("pending_approval")[0]
    done = warden("replay", pending["decision_id"], "--json", "--db", _db(recorded), cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    result = json.loads(done.stdout)
    assert (result["verdict"], result["inputs"], result["differences"]) == ("identical", "recorded", [])
    assert result["replayed"]["approval"]["expires_at"] == pending["approval"]["expires_at"]
    assert result["policy_digest"] == pending["policy_digest"]
    [entry] = audit(recorded.server, "decision", pending["decision_id"])
    assert entry["data"]["inputs"]["agent"]["autonomy"] == pending["autonomy"]


def test_the_api_replays_for_auditors_and_founders_only(recorded: History) -> None:
    killed = next(d for d in recorded.decisions if any(r["rule"] == "kill_switch" for r in d["reasons"]))
    for who in ("auditor", "founder"):
        answer = recorded.server.client(who).get(f"/v1/actions/{killed['decision_id']}/replay")
        assert answer.status_code == 200, answer.text
        assert answer.json()["verdict"] == "identical"
        assert answer.json()["replayed"]["status"] == "denied"
    for who in ("approver", "viewer", "a2"):
        refused = recorded.server.client(who).get(f"/v1/actions/{killed['decision_id']}/replay")
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    missing = recorded.server.client("auditor").get("/v1/actions/dec_00000000000000000000000000/replay")
    assert (missing.status_code, missing.json()["code"]) == (404, "decision_not_found")


def test_an_export_replays_offline_and_shows_the_kept_sets(recorded: History, tmp_path: Path) -> None:
    out = tmp_path / "export"
    key = recorded.server.runtime.settings.signing_key_file
    exported = warden("audit", "export", "--db", _db(recorded), "--out", out, "--sign-with", key, cwd=tmp_path)
    assert exported.returncode == EXIT_OK, exported.stderr
    assert "warden replay --all --export THIS_FOLDER" in (out / "README.txt").read_text()
    done = warden("replay", "--all", "--export", out, "--json", cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    again = _redecisions(recorded)
    count = len(recorded.decisions) + again
    assert summary == {"replayed": count, "identical": count, "different": 0, "not_replayable": 0,
                       "inputs_reconstructed": 0, "redecisions": again}

    listed = warden("policy", "show", "--list", "--export", out, cwd=tmp_path)
    first, second = (line.split()[0] for line in listed.stdout.splitlines())
    assert (first, second) == (recorded.decisions[0]["policy_digest"], recorded.decisions[-1]["policy_digest"])
    shown = warden("policy", "show", second[:15], "--export", out, cwd=tmp_path)
    assert shown.returncode == EXIT_OK, shown.stderr
    assert "# ---- payments.policy" in shown.stdout and "params.amount > 40000" in shown.stdout
    diff = warden("policy", "diff", first, second, "--export", out, cwd=tmp_path)
    assert diff.returncode == EXIT_OK, diff.stderr
    assert "-  escalate large_refund L2 when params.amount > 50000" in diff.stdout
    assert "+  escalate large_refund L2 when params.amount > 40000" in diff.stdout
    assert diff.stdout.rstrip().endswith("1 file(s) differ")
    same = warden("policy", "diff", second, recorded.policies, "--export", out, cwd=tmp_path)
    assert same.stdout.strip() == "the two sets have the same files"


def test_a_kept_set_altered_in_the_database_is_a_difference(recorded: History, tmp_path: Path) -> None:
    engine = recorded.server.runtime.db
    newer = recorded.decisions[-1]["policy_digest"]
    with engine.begin() as conn:
        kept = conn.execute(select(policy_sets.c.files).where(policy_sets.c.digest == newer)).scalar_one()
        files = json.loads(kept)
        files["payments.policy"] = files["payments.policy"].replace("params.amount > 500000", "params.amount > 0")
        conn.execute(update(policy_sets).where(policy_sets.c.digest == newer).values(files=json.dumps(files)))
    try:
        done = warden("replay", "--all", "--from", "0", "--db", _db(recorded), cwd=tmp_path)
        assert done.returncode == EXIT_CHECK_FAILED, done.stdout + done.stderr
        assert "DIFFERENT in" in done.stdout and "refund_hard_cap" in done.stdout
    finally:
        with engine.begin() as conn:
            conn.execute(update(policy_sets).where(policy_sets.c.digest == newer).values(files=kept))


def test_bad_requests_are_one_line_errors(recorded: History, tmp_path: Path) -> None:
    for args, said in [
        (("replay",), "give a DECISION_ID, or --all"),
        (("replay", "dec_nope"), "no decision dec_nope"),
        (("replay", "--all", "--since", "last tuesday"), "--since 'last tuesday'"),
        (("policy", "show", "zz"), "is not a policy digest"),
        (("policy", "show", "sha256:0000"), "matches no kept policy sets"),
        (("replay", "--all", "--export", str(tmp_path)), "not an audit export"),
    ]:
        done = warden(*args, "--db", _db(recorded), cwd=tmp_path) if "--export" not in args else warden(*args, cwd=tmp_path)
        assert done.returncode == EXIT_USAGE, (args, done.stdout, done.stderr)
        assert said in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_window_narrows_what_is_replayed(recorded: History, tmp_path: Path) -> None:
    def replayed(*window: str) -> int:
        done = warden("replay", "--all", "--json", *window, "--db", _db(recorded), cwd=tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        summary = json.loads(done.stdout.splitlines()[-1])["summary"]
        return int(summary["replayed"]) - int(summary["redecisions"])

    seqs = sorted(d["audit"]["seq"] for d in recorded.decisions)
    assert replayed("--since", "1d") == len(seqs)
    assert replayed("--since", "2999-01-01T00:00:00Z") == 0
    assert replayed("--from", str(seqs[10])) == len(seqs) - 10
    assert replayed("--from", str(seqs[10]), "--since", "2000-01-01") == len(seqs) - 10


def test_a_damaged_export_is_a_one_line_error(tmp_path: Path) -> None:
    for name, text, said in [
        ("not-json", b'{"seq":0,"kind":"decision"\n', "an entry is not JSON"),
        ("cut-short", b'{"seq":0}', "the last line does not end with a newline"),
        ("no-packet", b'{"actor":"a","data":{"decision":{}},"kind":"decision","prev":"","seq":0,'
                      b'"subject":"dec_1","time":"2026-12-07T00:00:00.000000Z"}\n', "holds no packet or decision"),
    ]:
        export = tmp_path / name
        export.mkdir()
        (export / "entries.jsonl").write_bytes(text)
        for args in (("replay", "--all"), ("policy", "impact", str(builtin_policy_dir()))):
            done = warden(*args, "--export", export, cwd=tmp_path)
            assert done.returncode == EXIT_USAGE, (name, args, done.stdout, done.stderr)
            assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
