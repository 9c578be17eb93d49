"""Events: the audit log's state changes, as subscribers see them.

Every decision, approval, rejection, expiry, execution outcome, incident, kill-switch change and
policy activation is an audit entry; an event is that entry, projected for its readers, with
the entry's seq and leaf hash so a receiver can prove it against the log. `model` defines it and
who may see it, `reader` reads events from the log, `hub` tails the log for this process's
server-sent-event streams, `webhooks` holds the registered endpoints and their durable delivery
outbox, `delivery` sends it (Standard Webhooks signatures over httpx) and `worker` runs it.

May import the store, the engine, `ledger/` and the config; never the pipeline, HTTP or the CLI.
"""
