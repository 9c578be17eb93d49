"""`warden serve`: a busy port is one line before anything else happens; the demo banner's
commands work when copied into a shell."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import EXIT_USAGE, Serving, environment, free_port, warden
from gateway.config import SHIPPED_POLICY_DIR

REPOSITORY = SHIPPED_POLICY_DIR.parent  # where the banner's `@policies/examples/...` paths resolve

HOLD_PORT = """
import socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
print(sock.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held, listening, by another process."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_PORT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    try:
        yield int(holder.stdout.readline())
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_port_is_one_line_and_nothing_else(tmp_path: Path, busy_port: int) -> None:
    done = warden("serve", "--port", str(busy_port), "--demo", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert done.stderr == f"warden serve: port {busy_port} on 127.0.0.1 is in use; choose another with --port\n"
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no database, no key, no demo identities


def test_the_port_from_the_settings_is_checked_the_same_way(tmp_path: Path, busy_port: int) -> None:
    (tmp_path / "warden.toml").write_text(f"port = {busy_port}\n")
    done = warden("serve", "--demo", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    assert done.stderr == f"warden serve: port {busy_port} on 127.0.0.1 is in use; choose another with --port\n"


def test_a_port_that_is_no_tcp_port_is_refused(tmp_path: Path) -> None:
    done = warden("serve", "--port", "70000", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    assert done.stderr == "warden serve: port 70000 is not a TCP port\n"


def test_help_names_every_demo_identity(tmp_path: Path) -> None:
    done = warden("serve", "--help", cwd=tmp_path)
    text = " ".join(done.stdout.split())
    assert "--demo register a demo agent, founder, approver and auditor and print their tokens" in text


def test_the_banner_commands_work_when_copied(tmp_path: Path) -> None:
    port = free_port()
    with Serving("--demo", "--port", str(port), cwd=tmp_path, port=port,
                 env={"WARDEN_POLICY_RELOAD": "false", "WARDEN_LOG_LEVEL": "warning"}) as server:  # fmt: skip
        banner = server.banner()
        assert "DECISION_ID" not in banner
        tokens = dict(re.findall(r"^  export (WARDEN_\w+_TOKEN)=(\S+)$", banner, re.MULTILINE))
        assert set(tokens) == {f"WARDEN_{role}_TOKEN" for role in ("AGENT", "FOUNDER", "APPROVER", "AUDITOR")}
        commands = dict(re.findall(r"^  (submit|escalate|approve): +(.+)$", banner, re.MULTILINE))
        shell = environment(tokens)

        def paste(line: str) -> dict[str, object]:
            done = subprocess.run(["bash", "-c", line], cwd=REPOSITORY, env=shell, capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, done.stderr
            answer: dict[str, object] = json.loads(done.stdout)
            return answer

        assert paste(commands["submit"])["status"] == "executed"
        pending = paste(commands["escalate"])
        assert pending["status"] == "pending_approval"
        approved = paste(commands["approve"])
        assert (approved["decision_id"], approved["status"]) == (pending["decision_id"], "executed")


def test_the_banner_signs_each_demo_person_in_to_the_console_once(tmp_path: Path) -> None:
    import httpx

    port = free_port()
    with Serving("--demo", "--port", str(port), cwd=tmp_path, port=port,
                 env={"WARDEN_POLICY_RELOAD": "false", "WARDEN_LOG_LEVEL": "warning"}) as server:  # fmt: skip
        banner = server.banner()
        assert f"  console:  http://localhost:{port}/console/" in banner
        links = dict(re.findall(r"^    (\S+@demo\.local) +(http://\S+/console/invite/wdn_invite_\S+)$", banner,
                                re.MULTILINE))
        assert set(links) == {"founder@demo.local", "approver@demo.local", "auditor@demo.local"}
        with httpx.Client(follow_redirects=False, timeout=30) as browser:
            url = links["approver@demo.local"].replace("localhost", "127.0.0.1")
            form = browser.get(url)
            assert form.status_code == 200 and "approver@demo.local" in form.text
            token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
            assert token is not None
            password = "demo password for the approver"
            done = browser.post(url, data={"password": password, "again": password, "signin_token": token.group(1)})
            assert done.status_code == 303 and done.headers["location"] == "/console/"
            inbox = browser.get(f"http://127.0.0.1:{port}/console/")
            assert inbox.status_code == 200 and "approver@demo.local" in inbox.text
            assert browser.get(url).status_code == 404  # used once
