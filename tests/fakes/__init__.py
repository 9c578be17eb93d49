"""Local servers that answer like the providers' real APIs (Stripe, Shopify, HubSpot), for the
live connectors' contract tests: the same paths, status codes, headers, error bodies,
idempotency and rate-limit behaviour, taken from each provider's published reference."""
