"""The HTTP API: one router per area, one body reader, authentication, problem+json."""
