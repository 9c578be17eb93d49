"""Where the files shipped with Warden are: the policy grammar and the shipped policies.

Both are package data of `dsl`, read through `importlib.resources`: `dsl/policies.lark` and
`dsl/policies/` (the `*.policy` files, `tests/*.toml`, `examples/*.json`). In the source tree these
two are symbolic links to the top-level `policies.lark` and `policies/`; a built wheel holds copies
of the files. Every other module asks these two functions, never a path of its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _package_file(name: str) -> Path:
    found = resources.files("dsl") / name
    if not isinstance(found, Path):  # a zip import: Warden reads its policies as plain files
        raise RuntimeError(f"Warden's shipped file {name!r} is not a file on disk ({found})")
    return found.resolve()


def builtin_policy_dir() -> Path:
    """The `policies/` directory shipped with Warden (beside `policies.lark`)."""
    return _package_file("policies")


def grammar_path() -> Path:
    """The policy grammar shipped with Warden, `policies.lark`."""
    return _package_file("policies.lark")
