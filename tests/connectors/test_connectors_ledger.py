"""The sandbox call ledger: one execution per idempotency key, across threads, processes,
restarts and a process killed in the middle of a call."""

from __future__ import annotations

import json
import multiprocessing
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from connectors import PermanentError, Registry, SandboxCallLedger, build_registry

REFUND = {"charge": "ch_1", "amount": 2500, "currency": "usd"}
FORK = multiprocessing.get_context("fork")


def test_the_same_key_twice_replays_the_first_answer(registry: Registry) -> None:
    first = registry.execute("stripe.refund", REFUND, idempotency_key="dec_1")
    again = registry.execute("stripe.refund", dict(REFUND), idempotency_key="dec_1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.external_id == first.external_id
    assert again.summary == first.summary and again.response == first.response
    ledger = registry.call_ledger
    assert ledger.count("dec_1") == 2 and ledger.executions_by_key() == {"dec_1": 1}
    assert [c.replayed for c in ledger.calls()] == [False, True]
    assert ledger.answer("dec_1").replays == 1


def test_normalised_params_are_the_same_params(registry: Registry) -> None:
    first = registry.execute("stripe.refund", REFUND, idempotency_key="dec_1")
    again = registry.execute("stripe.refund", {**REFUND, "amount": 2500.0, "reason": None},
                             idempotency_key="dec_1")
    assert again.replayed and again.external_id == first.external_id


@pytest.mark.parametrize(("tool", "params"), [
    ("stripe.refund", {**REFUND, "amount": 2501}),
    ("stripe.refund", {**REFUND, "reason": "duplicate"}),
    ("stripe.transfer", {"destination": "acct_1", "amount": 2500, "currency": "usd"}),
])
def test_the_same_key_with_other_params_is_refused(
    registry: Registry, tool: str, params: dict[str, Any]
) -> None:
    first = registry.execute("stripe.refund", REFUND, idempotency_key="dec_1")
    with pytest.raises(PermanentError, match="already used for a stripe.refund call") as refused:
        registry.execute(tool, params, idempotency_key="dec_1")
    assert refused.value.code == "idempotency_mismatch"
    assert registry.call_ledger.count("dec_1") == 1  # the refused call executed nothing
    assert registry.execute("stripe.refund", REFUND, idempotency_key="dec_1").external_id \
        == first.external_id


def test_an_empty_key_is_refused(registry: Registry) -> None:
    with pytest.raises(PermanentError) as refused:
        registry.execute("stripe.refund", REFUND, idempotency_key="")
    assert refused.value.code == "idempotency_key_missing"


def test_answers_survive_a_reopen_of_the_file(
    registry: Registry, reopen: Callable[..., Registry], calls_file: Path
) -> None:
    first = registry.execute("crm.log_note", {"record_id": "c_1", "body": "hi"},
                             idempotency_key="dec_1")
    registry.close()
    later = reopen()
    again = later.execute("crm.log_note", {"record_id": "c_1", "body": "hi"},
                          idempotency_key="dec_1")
    assert again.replayed and again.external_id == first.external_id
    assert again.response == first.response
    with pytest.raises(PermanentError, match="idempotency key"):
        later.execute("crm.log_note", {"record_id": "c_1", "body": "bye"}, idempotency_key="dec_1")
    modes = sqlite3.connect(calls_file).execute("PRAGMA journal_mode").fetchone()
    assert modes == ("wal",)


def test_an_in_memory_ledger_works_and_forgets() -> None:
    with SandboxCallLedger(None) as ledger:
        answer = ledger.record("k", "t.x", {"a": 1}, lambda view: ("id1", {"id": "id1"}, {}))
        assert answer.external_id == "id1" and ledger.count("k") == 1
        assert ledger.path is None


def test_a_failing_answer_builder_records_nothing(calls_file: Path) -> None:
    def broken(view: Any) -> Any:
        raise RuntimeError("bug in the answer")

    with SandboxCallLedger(calls_file) as ledger:
        with pytest.raises(RuntimeError):
            ledger.record("k", "t.x", {}, broken)
        assert ledger.calls() == [] and ledger.answer("k") is None
        assert ledger.record("k", "t.x", {}, lambda v: ("id", {}, {})).replayed is False


def test_threads_with_the_same_keys_execute_each_key_once(registry: Registry) -> None:
    keys = [f"dec_{i}" for i in range(40)]
    work = [key for key in keys for _ in range(4)]
    random.Random(7).shuffle(work)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(
            lambda key: (key, registry.execute("stripe.refund", REFUND, idempotency_key=key)),
            work))
    by_key: dict[str, set[str]] = {}
    for key, result in results:
        by_key.setdefault(key, set()).add(result.external_id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert sum(not r.replayed for _, r in results) == len(keys)
    assert registry.call_ledger.executions_by_key() == {key: 1 for key in keys}
    assert all(registry.call_ledger.count(key) == 4 for key in keys)


def _refund_in_child(data_dir: str, keys: list[str], seed: int, start: Any, out: Any) -> None:
    registry = build_registry("sandbox", data_dir=Path(data_dir))
    order = list(keys)
    random.Random(seed).shuffle(order)
    start.wait(30)
    answers = {key: registry.execute("stripe.refund", REFUND, idempotency_key=key).external_id
               for key in order}
    registry.close()
    out.put(answers)


def test_two_processes_with_the_same_keys_execute_each_key_once(
    tmp_path: Path, ledger_reader: Callable[[], SandboxCallLedger]
) -> None:
    keys = [f"dec_{i}" for i in range(30)]
    start, out = FORK.Event(), FORK.Queue()
    children = [FORK.Process(target=_refund_in_child, args=(str(tmp_path), keys, seed, start, out))
                for seed in (1, 2)]
    for child in children:
        child.start()
    start.set()
    answers = [out.get(timeout=60) for _ in children]
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert answers[0] == answers[1]  # both processes got the one answer of each key
    with ledger_reader() as ledger:
        assert ledger.executions_by_key() == {key: 1 for key in keys}
        calls = ledger.calls()
        assert len(calls) == 60 and len({c.pid for c in calls}) == 2


def _refund_slowly(data_dir: str, key: str) -> None:
    registry = build_registry("sandbox", data_dir=Path(data_dir), latency_ms=120_000)
    registry.execute("stripe.refund", REFUND, idempotency_key=key)


def test_a_process_killed_before_its_answer_left_a_record_the_retry_replays(
    tmp_path: Path, ledger_reader: Callable[[], SandboxCallLedger],
    reopen: Callable[..., Registry],
) -> None:
    child = FORK.Process(target=_refund_slowly, args=(str(tmp_path), "dec_crash"))
    child.start()
    deadline = time.monotonic() + 60
    with ledger_reader() as ledger:  # wait for the call to be recorded (then it sleeps)
        while ledger.count("dec_crash") == 0:
            assert child.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
    child.kill()  # SIGKILL: no cleanup, no answer
    child.join(30)
    assert child.exitcode == -9
    registry = reopen()
    retry = registry.execute("stripe.refund", REFUND, idempotency_key="dec_crash")
    assert retry.replayed is True
    assert registry.call_ledger.executions_by_key() == {"dec_crash": 1}
    assert registry.call_ledger.answer("dec_crash").external_id == retry.external_id


def test_calls_are_listed_in_order_with_their_answers(registry: Registry) -> None:
    registry.execute("crm.log_note", {"record_id": "c_1", "body": "a"}, idempotency_key="k1")
    registry.execute("stripe.refund", REFUND, idempotency_key="k2")
    registry.execute("crm.log_note", {"record_id": "c_1", "body": "a"}, idempotency_key="k1")
    calls = registry.call_ledger.calls()
    assert [(c.key, c.tool, c.replayed) for c in calls] == [
        ("k1", "crm.log_note", False), ("k2", "stripe.refund", False),
        ("k1", "crm.log_note", True)]
    assert [c.seq for c in calls] == sorted(c.seq for c in calls)
    assert calls[0].params_hash == calls[2].params_hash != calls[1].params_hash
    assert calls[1].response["object"] == "refund"
    assert registry.call_ledger.calls("k2") == [calls[1]]
    json.dumps([c.response for c in calls])


def test_the_ledger_is_shared_by_threads_while_answers_are_slow(reopen: Callable[..., Registry]
                                                                ) -> None:
    registry = reopen(latency_ms=50)
    barrier = threading.Barrier(6)

    def call(i: int) -> bool:
        barrier.wait(10)
        return registry.execute("crm.log_note", {"record_id": "c_1", "body": "x"},
                                idempotency_key="same").replayed

    with ThreadPoolExecutor(max_workers=6) as pool:
        replayed = list(pool.map(call, range(6)))
    assert sorted(replayed) == [False] + [True] * 5
