"""Proofs about a policy set, with an SMT solver: `warden policy analyze`.

    cel_ast     CEL source → a small tree, through cel-python's parser
    schema      the catalog's params: kinds, ranges, sample values
    patterns    a params string's schema pattern as a Z3 regex (the simple ones)
    cel_smt     the CEL subset → Z3 terms, ERRORs included
    model       the engine's decision for one tool, over a symbolic packet
    search      Z3's answer, confirmed by the engine before it is called a counter-example
    questions   the built-in questions (L3 and founders, A1 and approvals, dead rules, gaps,
                conflicts)
    assertions  the authors' own questions (`assertions.toml` beside the policies)
    report      the report, as text or JSON

May import the engine, `dsl/`, `invariants/` and `connectors/` (for the catalog); nothing
below the command line imports it.
"""
