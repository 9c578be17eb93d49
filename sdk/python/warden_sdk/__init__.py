"""Warden's Python SDK: an agent's governed actions in one call.

    WardenClient / AsyncWardenClient   submit, evaluate, get, wait, act
    Decision and its parts             typed results (models)
    WardenError and below              typed exceptions (errors)
    governed                           a Python function that runs only if Warden allows it
    verify_receipt                     prove a decision was recorded in the signed audit log
    verify_webhook                     check a Standard Webhooks delivery from Warden

Depends on httpx and pydantic only; it never imports the gateway.
"""

from warden_sdk.aio import AsyncWardenClient
from warden_sdk.client import WardenClient
from warden_sdk.errors import (
    ApprovalRequired,
    Conflict,
    ConnectionFailed,
    Denied,
    Expired,
    Failed,
    Forbidden,
    InvalidRequest,
    NotFound,
    OutcomeError,
    ProblemError,
    ReceiptError,
    ReceiptNotReady,
    Rejected,
    StillPending,
    Unauthorized,
    Unavailable,
    WardenError,
)
from warden_sdk.models import (
    Approval,
    ApprovalGrant,
    AuditRef,
    Claim,
    Decision,
    Execution,
    InvariantResult,
    Reason,
)
from warden_sdk.governed import governed
from warden_sdk.packets import new_packet_id
from warden_sdk.receipts import Receipt, check_receipt, verify_receipt, verify_receipt_async
from warden_sdk.retries import Retries
from warden_sdk.webhooks import WebhookError, sign_webhook, verify_webhook

__all__ = [
    "ApprovalGrant", "Approval", "ApprovalRequired", "AsyncWardenClient", "AuditRef", "Claim",
    "Conflict", "ConnectionFailed", "Decision", "Denied", "Execution", "Expired", "Failed",
    "Forbidden", "InvalidRequest", "InvariantResult", "NotFound", "OutcomeError", "ProblemError",
    "Reason", "Receipt", "ReceiptError", "ReceiptNotReady", "Rejected", "Retries", "StillPending",
    "Unauthorized", "Unavailable", "WardenClient", "WardenError", "WebhookError", "check_receipt",
    "governed", "new_packet_id", "sign_webhook", "verify_receipt", "verify_receipt_async", "verify_webhook",
]
