"""The decision, in memory: a packet, an agent and a compiled policy set in; a Decision out.

Imports only `dsl/`, `invariants/` and `ledger.canonical`: no database, HTTP or connector.
"""
