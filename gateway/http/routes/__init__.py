"""The API's routes, one router per area; `gateway.http.app` includes them in this order.

    actions      POST /v1/actions, POST /v1/actions/evaluate, GET /v1/actions/{decision_id}
    tools        GET /v1/tools
    approvals    GET /v1/approvals, POST /v1/approvals/{decision_id}/approve · /reject
    killswitch   POST · GET /v1/kill-switch
    incidents    GET /v1/incidents
    audit        GET /v1/audit/checkpoint, /entries, /proofs/inclusion, /proofs/consistency
    events       GET /v1/events (server-sent events)
    webhooks     GET /v1/webhooks, GET /v1/webhooks/{id}/deliveries
    operations   GET /healthz, /readyz, /metrics
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.http.routes import actions, approvals, audit, events, incidents, killswitch, operations, tools, webhooks

ROUTERS: tuple[APIRouter, ...] = (
    actions.router, tools.router, approvals.router, killswitch.router, incidents.router,
    audit.router, events.router, webhooks.router, operations.router,
)
