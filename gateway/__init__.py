"""Warden's gateway: everything between an agent's packet and a connector's call.

    cli ─► http ─► runtime ─► pipeline ─► execution ─► store ─► engine
    (each room imports only the rooms to its right; `config` and `logs` serve them all)

- `engine`: the decision, in memory (packet + agent + policy set → Decision).
- `store`: the gateway's tables, the unit of work, identities, the kill switch's state.
- `execution`: the outbox, from claim to recorded outcome, and its worker.
- `pipeline`: submitting a packet and deciding approvals, raising domain errors.
- `runtime`: one running gateway assembled from settings, with its background loops.
- `http`: the FastAPI routers, problem+json, authentication.
- `cli`: every `warden` command.

ARCHITECTURE.md at the top of the repository draws the whole house.
"""
