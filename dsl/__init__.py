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

from dsl.compiler import (
    STAGES,
    compile_policy_dir,
    compile_sources,
    load_builtin_policies,
)
from dsl.digest import policy_digest
from dsl.errors import MAX_ERRORS, PolicyCompileError
from dsl.model import Diagnostic, PolicySet
from dsl.parser import GRAMMAR_PATH, grammar_bytes
from dsl.shipped import builtin_policy_dir

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
