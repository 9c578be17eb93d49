"""The checks behind receipts, written with the standard library only (the SDK depends on
httpx and pydantic alone): Ed25519 signature verification (RFC 8032), C2SP signed notes and
checkpoints, RFC 6962 inclusion proofs. Internal: the public surface is
`warden_sdk.receipts`."""
