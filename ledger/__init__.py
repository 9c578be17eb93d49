"""Warden's audit ledger: an RFC 6962 transparency log with signed checkpoints.

The cryptographic core lives here and has no database dependency:

* :mod:`ledger.merkle` / :mod:`ledger.compact` - RFC 6962 hashing, tree heads, proofs and their
  RFC 9162 verifiers, and an O(log n) incremental tree head;
* :mod:`ledger.note` - C2SP signed notes and Ed25519 keys;
* :mod:`ledger.checkpoint` - C2SP tlog-checkpoint bodies;
* :mod:`ledger.entry` - RFC 8785 canonical entries;
* :mod:`ledger.verify` - the offline verifier behind ``warden audit verify``.

Storage, export and the CLI build on these modules.
"""
