"""The policy digest: `sha256:<hex>` naming exactly one compiled policy set.

Every decision records the digest it was made under, and an approval is bound to it, so it must
change when any byte that shapes the policies changes, and only then. It covers, in order:

    frame(FORMAT) frame(grammar bytes) u64(number of files)
    then for each file, sorted by the UTF-8 bytes of its path:  frame(path) frame(content)

where `frame(b)` is the 8-byte big-endian length of `b` followed by `b`. The length prefixes make
the boundaries unambiguous (no two different file sets give the same byte stream), sorting makes
it independent of the order files were read in, and paths are relative with `/` separators, so
the same checkout gives the same digest on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

#: Bump when the digest's layout changes.
FORMAT = b"warden.policy-digest.v1"


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def policy_digest(files: Mapping[str, bytes], grammar: bytes) -> str:
    """The digest of `files` ({relative path: bytes}) compiled with `grammar`."""
    h = hashlib.sha256()
    h.update(_frame(FORMAT))
    h.update(_frame(grammar))
    h.update(len(files).to_bytes(8, "big"))
    for path, content in sorted((p.encode("utf-8"), c) for p, c in files.items()):
        h.update(_frame(path))
        h.update(_frame(content))
    return "sha256:" + h.hexdigest()
