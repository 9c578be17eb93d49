"""Warden's audit ledger: an RFC 6962 transparency log with signed checkpoints.

The cryptographic core lives here and has no database dependency:

* :mod:`ledger.merkle` / :mod:`ledger.compact` - RFC 6962 hashing, tree heads, proofs and their
  RFC 9162 verifiers, and an O(log n) incremental tree head;
* :mod:`ledger.note` - C2SP signed notes and Ed25519 keys;
* :mod:`ledger.checkpoint` - C2SP tlog-checkpoint bodies;
* :mod:`ledger.canonical` - RFC 8785 canonical JSON, written and checked;
* :mod:`ledger.entry` - log entries in that form;
* :mod:`ledger.verify` - the offline verifier behind ``warden audit verify``: one run over the
  entries (:mod:`ledger.log_verifier`), checkpoints waiting for their size
  (:mod:`ledger.pending_checkpoint`), which entry an edit altered (:mod:`ledger.alteration`),
  and the export folder it reads (:mod:`ledger.export_layout`).

Storage, export and the CLI build on these modules.
"""
