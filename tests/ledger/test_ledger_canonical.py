"""`ledger.canonical`: the one home of canonical JSON, its refusals, and its place in the layout."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ledger.canonical import NotCanonical, canonical_value
from ledger.entry import EntryError, decode_entry

CANONICAL = Path(__file__).resolve().parents[2] / "ledger" / "canonical.py"
PROJECT_PACKAGES = {"bench", "connectors", "dsl", "gateway", "invariants", "ledger", "tests"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "input is not valid UTF-8"),
        (b"{", "input is not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (b'{"a":1} ', "input has trailing data after column 7"),
        (b'{"b":1,"a":2}', "input is not in RFC 8785 canonical form"),
        (b"[NaN]", "NaN is not allowed in canonical JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "input JSON is nested too deeply"),
    ],
)
def test_non_canonical_bytes_are_refused_with_the_reason(raw: bytes, message: str) -> None:
    with pytest.raises(NotCanonical, match=f"^{re.escape(message)}$"):
        canonical_value(raw)


def test_canonical_bytes_read_back_as_their_value() -> None:
    assert canonical_value(b'{"a":[1,"\xc3\xa9",null],"b":0.5}') == {"a": [1, "\u00e9", None], "b": 0.5}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "entry is not valid UTF-8"),
        (b'{"b":1,"a":2}', "entry is not in RFC 8785 canonical form"),
        (b'{"a":NaN}', "NaN is not allowed in canonical JSON"),
    ],
)
def test_an_entry_reports_the_canonical_refusal_as_its_own(raw: bytes, message: str) -> None:
    with pytest.raises(EntryError, match=f"^{re.escape(message)}$"):
        decode_entry(raw)


def test_canonical_json_imports_nothing_from_the_project() -> None:
    tree = ast.parse(CANONICAL.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} & PROJECT_PACKAGES == set()
