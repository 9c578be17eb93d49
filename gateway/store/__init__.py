"""The gateway's state in SQL: its tables and their migration, the unit-of-work writer, decision
and incident records, identities, API tokens and the kill switch's state."""
