"""Hot policy reload on a copy of the shipped policies: activation, failures, debounce, SIGHUP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from dsl import PolicySet, builtin_policy_dir, compile_policy_dir
from gateway.runtime.reload import PolicyHolder, PolicyWatcher, install_sighup

WAIT = 10.0  # upper bound only; every wait returns as soon as its event is set


class Events:
    """What the watcher reported, with an Event per kind to wait on."""

    def __init__(self) -> None:
        self.activated: list[PolicySet] = []
        self.failed: list[str] = []
        self.on_activation = threading.Event()
        self.on_failure = threading.Event()

    def activate(self, policy_set: PolicySet) -> None:
        self.activated.append(policy_set)
        self.on_activation.set()

    def fail(self, error: str) -> None:
        self.failed.append(error)
        self.on_failure.set()

    def next_activation(self) -> PolicySet:
        assert self.on_activation.wait(WAIT), "no activation"
        self.on_activation.clear()
        return self.activated[-1]

    def next_failure(self) -> str:
        assert self.on_failure.wait(WAIT), "no failure reported"
        self.on_failure.clear()
        return self.failed[-1]


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    target.mkdir()
    for file in builtin_policy_dir().glob("*.policy"):
        shutil.copy2(file, target / file.name)
    return target


@pytest.fixture
def holder(policy_dir: Path) -> PolicyHolder:
    return PolicyHolder.from_dir(policy_dir)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def watcher(holder: PolicyHolder, policy_dir: Path, events: Events) -> Iterator[PolicyWatcher]:
    w = PolicyWatcher(holder, policy_dir, poll_seconds=0.05, on_activated=events.activate, on_failed=events.fail)
    yield w
    w.stop()


def write(path: Path, text: str) -> None:
    """Write `text`, making sure the file's mtime moves even on a coarse-grained clock."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    after = path.stat().st_mtime_ns
    if after <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_an_edit_activates_a_new_set_and_swaps_the_engine(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    old_set, old_engine = holder.current()
    watcher.start()
    cash = policy_dir / "cash.policy"
    write(cash, cash.read_text() + "\n# reviewed\n")
    activated = events.next_activation()
    assert activated.digest != old_set.digest
    assert activated.digest == compile_policy_dir(policy_dir).digest
    assert holder.wait_for(activated.digest, WAIT)
    new_set, new_engine = holder.current()
    assert new_set is activated and new_engine is not old_engine and new_engine.policy_set is activated
    assert events.failed == []


def test_a_broken_file_keeps_the_last_good_set_until_it_is_fixed(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    good_digest = holder.digest
    cash = policy_dir / "cash.policy"
    original = cash.read_text()
    watcher.start()
    write(cash, original + "\npolicy broken {\n")
    error = events.next_failure()
    assert re.search(rf"{re.escape(str(cash))}:\d+:\d+: error: ", error), error
    assert "^" in error  # the caret under the column
    assert holder.digest == good_digest and events.activated == []

    write(cash, original + "\n# fixed\n")
    fixed = events.next_activation()
    assert holder.wait_for(fixed.digest, WAIT)
    assert fixed.digest not in (good_digest,) and len(events.failed) == 1


def test_reload_now_is_synchronous_and_a_no_op_when_nothing_changed(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    before = holder.digest
    result = watcher.reload_now()
    assert (result.outcome, result.digest) == ("unchanged", before)
    assert events.activated == [] and events.failed == []

    crm = policy_dir / "crm.policy"
    write(crm, crm.read_text() + "\n# note\n")
    result = watcher.reload_now()  # no thread started: it all happens here
    assert result.outcome == "activated" and result.digest != before
    assert holder.digest == result.digest == events.activated[-1].digest


def test_touching_files_without_changing_them_activates_nothing(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    crm = policy_dir / "crm.policy"
    write(crm, crm.read_text())  # same bytes, new mtime
    assert watcher.poll_once() is None  # seen once: not yet stable
    result = watcher.poll_once()
    assert result is not None and result.outcome == "unchanged"
    assert watcher.poll_once() is None  # applied: nothing more to do
    assert events.activated == []


def test_a_change_must_hold_still_for_one_poll(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    crm = policy_dir / "crm.policy"
    text = crm.read_text()
    write(crm, text + "\n# half")
    assert watcher.poll_once() is None
    write(crm, text + "\n# half written, now complete\n")
    assert watcher.poll_once() is None  # still moving
    result = watcher.poll_once()
    assert result is not None and result.outcome == "activated"
    assert len(events.activated) == 1 and holder.digest == result.digest


def test_a_failing_activation_callback_keeps_the_old_set_and_retries(
    holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    attempts: list[str] = []

    def record(policy_set: PolicySet) -> None:
        attempts.append(policy_set.digest)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")
        events.activate(policy_set)

    watcher = PolicyWatcher(holder, policy_dir, poll_seconds=0.05, on_activated=record, on_failed=events.fail)
    before = holder.digest
    crm = policy_dir / "crm.policy"
    write(crm, crm.read_text() + "\n# note\n")
    assert watcher.poll_once() is None
    failed = watcher.poll_once()
    assert failed is not None and failed.outcome == "failed" and holder.digest == before
    assert "database unavailable" in events.failed[-1]
    retried = watcher.poll_once()
    assert retried is not None and retried.outcome == "activated"
    assert attempts[0] == attempts[1] == holder.digest


def test_a_removed_directory_is_a_failure_not_a_crash(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    before = holder.digest
    shutil.rmtree(policy_dir)
    result = watcher.reload_now()
    assert result.outcome == "failed" and holder.digest == before
    assert "is not a directory" in events.failed[-1]


def test_readers_always_get_a_matching_pair(holder: PolicyHolder, policy_dir: Path) -> None:
    other = policy_dir.parent / "other"
    shutil.copytree(policy_dir, other)
    (other / "crm.policy").write_text((other / "crm.policy").read_text() + "\n# other\n")
    sets = [holder.current()[0], compile_policy_dir(other)]
    stop = threading.Event()
    mismatches: list[str] = []

    def read() -> None:
        while not stop.is_set():
            policy_set, engine = holder.current()
            if engine.policy_set is not policy_set:
                mismatches.append(policy_set.digest)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for n in range(200):
        holder.activate(sets[n % 2])
    stop.set()
    for t in readers:
        t.join()
    assert mismatches == []


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_and_chains_to_the_previous_handler(
    watcher: PolicyWatcher, holder: PolicyHolder, policy_dir: Path, events: Events
) -> None:
    if threading.current_thread() is not threading.main_thread():
        assert install_sighup(watcher) is False
        pytest.skip("signal handlers can only be installed from the main thread")
    chained = threading.Event()

    def earlier(_signum: int, _frame: FrameType | None) -> None:
        chained.set()

    original = signal.signal(signal.SIGHUP, earlier)
    try:
        assert install_sighup(watcher) is True
        crm = policy_dir / "crm.policy"
        write(crm, crm.read_text() + "\n# reload me\n")
        os.kill(os.getpid(), signal.SIGHUP)  # watcher not started: a one-off reload thread
        activated = events.next_activation()
        assert chained.wait(WAIT)
        assert holder.wait_for(activated.digest, WAIT)

        watcher.start()
        write(crm, crm.read_text() + "\n# and again\n")
        watcher.poll_seconds = 60.0  # only the signal can wake it in time now
        os.kill(os.getpid(), signal.SIGHUP)
        assert events.next_activation().digest != activated.digest
    finally:
        signal.signal(signal.SIGHUP, original)
