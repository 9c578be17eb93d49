"""`warden policy analyze` and the assertions in `warden policy test`, as a shell runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.analysis.assertions import AssertionFileError, load
from gateway.config import SHIPPED_POLICY_DIR

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def warden(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICY_DIR, target)
    return target


def test_analyze_the_shipped_policies(tmp_path: Path) -> None:
    result = warden("policy", "analyze", SHIPPED_POLICY_DIR, cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "[holds] l3-founder" in result.stdout
    assert "[notes] conflicts" in result.stdout
    assert "[holds] assertions: 9/9 proved" in result.stdout
    assert "listings.banned_claims (shopify.publish_listing): the function matches()" in result.stdout


def test_analyze_json_and_one_question(tmp_path: Path) -> None:
    result = warden("policy", "analyze", SHIPPED_POLICY_DIR, "--json", "--question", "gaps",
                    cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    report = json.loads(result.stdout)
    assert [q["name"] for q in report["questions"]] == ["gaps"]
    assert report["assertions"] is None and report["ok"] is True


def test_a_broken_assertion_fails_and_explain_reproduces_its_packet(
        policy_copy: Path, tmp_path: Path) -> None:
    policy = policy_copy / "payments.policy"
    policy.write_text(policy.read_text().replace("params.amount > 500000", "params.amount > 900000"))
    result = warden("policy", "analyze", policy_copy, "--json", "--question", "assertions",
                    cwd=tmp_path)
    assert result.returncode == EXIT_CHECK_FAILED, result.stderr
    report = json.loads(result.stdout)
    failed = [a for a in report["assertions"] if a["outcome"] == "failed"]
    assert [a["name"] for a in failed] == ["refunds over $5,000 are never automated"]
    witness = failed[0]["witnesses"][0]
    packet = tmp_path / "packet.json"
    packet.write_text(json.dumps(witness["packet"]))
    explained = warden("policy", "explain", packet, "--autonomy", witness["autonomy"],
                       "--dir", policy_copy, "--json", cwd=tmp_path)
    assert explained.returncode == EXIT_OK, explained.stderr
    assert json.loads(explained.stdout)["status"] == witness["status"] != "denied"

    tested = warden("policy", "test", policy_copy, cwd=tmp_path)
    assert tested.returncode == EXIT_CHECK_FAILED
    assert "assertions.toml: refunds over $5,000 are never automated: FAIL" in tested.stdout


def test_policy_test_counts_the_assertions(tmp_path: Path) -> None:
    result = warden("policy", "test", SHIPPED_POLICY_DIR, "-v", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stdout
    assert "(9 assertion(s))" in result.stdout
    assert "assertions.toml: payouts never run without a founder: PASS (proved)" in result.stdout


def test_a_bad_assertions_file_is_a_located_usage_error(policy_copy: Path, tmp_path: Path) -> None:
    (policy_copy / "assertions.toml").write_text('[[assert]]\nname = "x"\ntool = "stripe.refund"\n'
                                                 'never = "exploded"\n')
    result = warden("policy", "analyze", policy_copy, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert f"{policy_copy / 'assertions.toml'}:4:1: unknown status 'exploded'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("text", "where", "message"), [
    ('[[assert]]\nname = "a"\ntool = "x"\n  nevr = "denied"\n', "4:3", "unknown key 'nevr'"),
    ('[[assert]]\nname = "a"\ntool = "x"\n', "1:1", "checks nothing"),
    ('[[assert]]\nname = "a"\ntool = "x"\nnever = "denied"\n[[assert]]\nname = "a"\n'
     'tool = "y"\nnever = "denied"\n', "6:1", "a second assertion named 'a'"),
    ('[[assert]]\nname = "a"\ntool = "x"\nnever = "denied"\nwhen = "params.a >"\n', "5:1",
     "not valid CEL"),
    ('[[assert]]\nname = "a"\ntool = "x"\nonly = "denied"\nrisk_at_least = "L9"\n', "5:1",
     "unknown risk tier"),
    ('[[assert]]\nname = "a"\ntool = "x"\nnever = "denied"\nautonomy = ["A7"]\n', "5:1",
     "unknown autonomy"),
    ('[[assert]]\nname = "a"\nnever = "denied"\n', "1:1", "`tool` is required"),
    ('[[assert]\n', "1:", "not TOML"),
    ('title = "x"\n', "1:1", "unknown key 'title'"),
])
def test_assertion_file_mistakes_are_located(tmp_path: Path, text: str, where: str,
                                             message: str) -> None:
    path = tmp_path / "assertions.toml"
    path.write_text(text)
    with pytest.raises(AssertionFileError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}:{where}")
    assert message in str(caught.value)
