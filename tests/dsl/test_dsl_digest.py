"""The policy digest changes when any policy byte changes, and only then."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import (
    PolicyCompileError, compile_policy_dir, compile_sources, grammar_bytes, policy_digest,
)

POLICY = 'policy p {\n  applies to tool "a.b"\n  risk L1\n}\n'

paths = st.text(alphabet="abcdefghij._-/", min_size=1, max_size=12)
file_sets = st.dictionaries(paths, st.binary(max_size=64), min_size=1, max_size=5)


@given(file_sets, st.randoms())
def test_same_bytes_same_digest_in_any_order(files: dict[str, bytes], rnd: object) -> None:
    items = list(files.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert policy_digest(dict(items), b"g") == policy_digest(files, b"g")


@given(file_sets, st.data())
def test_any_content_byte_change_changes_the_digest(files: dict[str, bytes],
                                                    data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(files)))
    content = files[path]
    changed = dict(files)
    if content and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(content) - 1))
        new = data.draw(st.integers(0, 255).filter(lambda b: b != content[i]))
        changed[path] = content[:i] + bytes([new]) + content[i + 1:]
    else:
        i = data.draw(st.integers(0, len(content)))
        changed[path] = content[:i] + data.draw(st.binary(min_size=1, max_size=3)) + content[i:]
    assert policy_digest(changed, b"g") != policy_digest(files, b"g")


@given(file_sets, st.data())
def test_a_path_change_or_a_new_file_changes_the_digest(files: dict[str, bytes],
                                                        data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(files)))
    new_path = data.draw(paths.filter(lambda p: p not in files))
    renamed = {new_path if p == path else p: c for p, c in files.items()}
    assert policy_digest(renamed, b"g") != policy_digest(files, b"g")
    added = {**files, new_path: b""}
    assert policy_digest(added, b"g") != policy_digest(files, b"g")


@given(st.binary(max_size=20), st.binary(max_size=20), st.binary(max_size=20))
def test_boundaries_are_unambiguous(a: bytes, b: bytes, c: bytes) -> None:
    # Moving bytes from one file's content into the next path cannot give the same stream.
    one = {"x": a + b, "y": c}
    two = {"x": a, "y": b + c}
    assert (policy_digest(one, b"g") == policy_digest(two, b"g")) == (b == b"")


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=" \t#x", max_size=10))
def test_compiled_set_digest_tracks_bytes_even_without_a_semantic_change(tail: str) -> None:
    base = compile_sources({"p.policy": POLICY})
    other = compile_sources({"p.policy": POLICY + tail.replace("x", "\n")})
    assert (base.digest == other.digest) == (tail == "")


def test_digest_covers_the_grammar() -> None:
    files = {"p.policy": POLICY.encode()}
    assert policy_digest(files, grammar_bytes()) == compile_sources(files).digest
    assert policy_digest(files, grammar_bytes() + b" ") != compile_sources(files).digest


def test_digest_is_independent_of_the_directory(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.policy").write_text(POLICY)
    assert (compile_policy_dir(tmp_path / "one").digest
            == compile_policy_dir(tmp_path / "two").digest
            == compile_sources({"p.policy": POLICY}).digest)


def test_digest_format() -> None:
    digest = compile_sources({"p.policy": POLICY}).digest
    assert digest.startswith("sha256:")
    int(digest.removeprefix("sha256:"), 16)
    assert len(digest) == len("sha256:") + 64


SECOND = 'role finance "F"\npolicy q {\n  applies to tool "c.d"\n  risk L2\n}\n'


def test_compiled_digest_is_independent_of_file_order() -> None:
    one = compile_sources({"a.policy": POLICY, "b.policy": SECOND})
    two = compile_sources({"b.policy": SECOND, "a.policy": POLICY})
    assert one.digest == two.digest and one.files == two.files == ("a.policy", "b.policy")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_byte_change_that_still_compiles_changes_the_digest(data: st.DataObject) -> None:
    original = SECOND.encode()
    i = data.draw(st.integers(0, len(original) - 1))
    new = data.draw(st.sampled_from(b" \n#abcLAq0123\"{}").filter(lambda b: b != original[i]))
    mutated = original[:i] + bytes([new]) + original[i + 1:]
    try:
        changed = compile_sources({"b.policy": mutated})
    except PolicyCompileError:
        return
    assert changed.digest != compile_sources({"b.policy": original}).digest
