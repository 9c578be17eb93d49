"""Delegation: asking the policy engines a policy delegates to (OPA) before the engine decides."""
