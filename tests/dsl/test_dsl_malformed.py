"""A corpus of malformed policy files (tests/dsl/malformed/), each named for what it reproduces.

Each file's first line says the error it must give: `# expect: CODE LINE:COL`. Every one must
fail with a PolicyCompileError (never another exception), located at that position, rendered as
`file:line:col: error: ...` with the source line and a caret under the column.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl import PolicyCompileError, compile_policy_dir, compile_sources

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.policy"))
_EXPECT = re.compile(r"# expect: (\w+) (\d+):(\d+)")


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 25


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_malformed_file_gives_a_located_error(path: Path) -> None:
    data = path.read_bytes()
    expect = _EXPECT.match(data.decode("utf-8", "replace"))
    assert expect, f"{path.name}: first line must be '# expect: CODE LINE:COL'"
    code, line, column = expect.group(1), int(expect.group(2)), int(expect.group(3))
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({path.name: data})
    first = caught.value.diagnostics[0]
    assert (first.code, first.span.line, first.span.column) == (code, line, column), first.render()
    rendered = first.render().splitlines()
    assert rendered[0].startswith(f"{path.name}:{line}:{column}: error: ")
    source_line = data.decode("utf-8", "replace").split("\n")[line - 1].rstrip("\r")
    assert rendered[1] == "    " + source_line
    assert rendered[2] == "    " + " " * (column - 1) + "^"


def test_whole_corpus_as_one_directory_reports_every_file(tmp_path: Path) -> None:
    # Files that fail in the parser stop the compiler before name resolution, so compare with
    # the files whose first error comes from the Parse stage (or before).
    for path in FILES:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    with pytest.raises(PolicyCompileError) as caught:
        compile_policy_dir(tmp_path)
    files = {Path(d.span.file).name for d in caught.value.diagnostics}
    assert len(files) >= 15
    assert all(d.span.file.startswith(str(tmp_path)) for d in caught.value.diagnostics)
