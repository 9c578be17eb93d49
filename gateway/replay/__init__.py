"""Deciding recorded decisions again: replay under the recorded policy set (determinism), and
impact analysis under a candidate set (what a change would have done to recorded history).

Reads the log only (`history`: a gateway's database or an audit export), decides with the engine,
and writes nothing. May import the store (read-only), the engine, `dsl/` and `ledger/`.
"""
