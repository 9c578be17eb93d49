"""The policy language: parse `policies/*.policy` files with `policies.lark` and compile them
into a `PolicySet` of plain dataclasses (see `dsl.model`)."""
