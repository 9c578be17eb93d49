"""Warden's gateway: the decision engine, the command line and (later) the HTTP API."""
