"""The policy language: parse `policies/*.policy` files with `policies.lark` and compile them
into a `PolicySet` of plain dataclasses (see `dsl.model`).

    from dsl import compile_policy_dir, compile_sources, PolicyCompileError

    policy_set = compile_policy_dir("policies")           # or compile_sources({"a.policy": text})
    policy_set.digest                                     # "sha256:..."
    policy_set.warnings                                   # Diagnostics from the linter
    # PolicyCompileError(...).diagnostics: every error, each with file:line:col and a caret

The compiler's stages are listed in `dsl.compiler.STAGES`; the known mistakes and their
messages in `dsl.mistakes`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsl.compiler import STAGES, compile_policy_dir, compile_sources, load_builtin_policies
    from dsl.digest import policy_digest
    from dsl.errors import MAX_ERRORS, PolicyCompileError
    from dsl.grammar import GRAMMAR_PATH, grammar_bytes
    from dsl.model import Diagnostic, PolicySet
    from dsl.shipped import builtin_policy_dir

#: Where each name of the package lives. They are imported on first use, so that a light module
#: (`dsl.vocabulary`, `dsl.shipped`) can be imported without loading the compiler and the CEL engine.
_HOMES = {
    "STAGES": "dsl.compiler",
    "compile_policy_dir": "dsl.compiler",
    "compile_sources": "dsl.compiler",
    "load_builtin_policies": "dsl.compiler",
    "policy_digest": "dsl.digest",
    "MAX_ERRORS": "dsl.errors",
    "PolicyCompileError": "dsl.errors",
    "GRAMMAR_PATH": "dsl.grammar",
    "grammar_bytes": "dsl.grammar",
    "Diagnostic": "dsl.model",
    "PolicySet": "dsl.model",
    "builtin_policy_dir": "dsl.shipped",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dsl' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)

__all__ = [
    "GRAMMAR_PATH",
    "MAX_ERRORS",
    "STAGES",
    "Diagnostic",
    "PolicyCompileError",
    "PolicySet",
    "builtin_policy_dir",
    "compile_policy_dir",
    "compile_sources",
    "grammar_bytes",
    "load_builtin_policies",
    "policy_digest",
]
