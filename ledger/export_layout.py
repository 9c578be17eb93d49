"""The export folder's layout, shared by its writer (`warden audit export`) and its offline reader
(`warden audit verify DIR`):

    entries.jsonl              one entry per line: exactly the hashed bytes, then "\\n"
    checkpoints/<size>.note    one signed checkpoint per file, size zero-padded to 12 digits
    log.pub                    the verifier key of the log's FIRST signing key, then "\\n"
    README.txt                 what the files are and how to verify them

No database here: the offline verifier reads exports with nothing but this and the crypto core.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ledger.report import VerificationFailure

__all__ = [
    "CHECKPOINT_DIR",
    "ENTRIES_FILE",
    "KEY_FILE",
    "README_FILE",
    "checkpoint_file_name",
    "checkpoint_files",
    "entry_lines",
]

ENTRIES_FILE = "entries.jsonl"
CHECKPOINT_DIR = "checkpoints"
KEY_FILE = "log.pub"
README_FILE = "README.txt"

_CHECKPOINT_FILE = re.compile(r"([0-9]{12})\.note")


def checkpoint_file_name(size: int) -> str:
    return f"{size:012d}.note"


def checkpoint_files(folder: Path) -> Iterator[tuple[Path, int | None]]:
    """The checkpoint files in ``folder`` in name order, each with the tree size its name gives.

    A ``.note`` file whose name is not a 12-digit size comes with None (the caller refuses it);
    any other file (e.g. an editor's backup) is not a checkpoint: skipped, never trusted.
    """
    for path in sorted(folder.iterdir()):
        match = _CHECKPOINT_FILE.fullmatch(path.name)
        if match is not None:
            yield path, int(match.group(1))
        elif path.suffix == ".note":
            yield path, None


def entry_lines(path: Path) -> Iterator[bytes]:
    """``entries.jsonl`` line by line, without the newline every line must end with.

    Read in large blocks and split in C: iterating a file object line by line costs a
    noticeable share of the verifier's per-entry budget. A last line without its newline is
    step (1)'s failure (the file was cut short).
    """
    count = 0
    tail = b""
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            count += len(lines)
            yield from lines
    if tail:
        raise VerificationFailure(
            1, "the last line does not end with a newline (file cut short?)",
            seq=count, line=count + 1,
        )
