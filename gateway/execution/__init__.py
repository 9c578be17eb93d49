"""The outbox: every allowed action run once through its connector, and its outcome recorded."""
