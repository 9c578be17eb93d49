"""Reading a request body: packets and the small JSON bodies (approve, reject, kill switch) go
through the same stages, cheapest first, so a hostile body costs little and always gets a
specific problem:

    size (declared) ─► media type ─► size (streamed) ─► UTF-8 ─► JSON ─► I-JSON ─► depth, items ─► schema
       413                415            413              400      400     422        413/422        422

I-JSON (RFC 7493) is what every party reading a packet agrees on: no object names a key twice
(`duplicate_key`: one reader would take the first `amount`, another the last) and every string
and key is Unicode text (`invalid_unicode`: a lone surrogate escape such as "\\ud800" cannot be
hashed canonically, and two such keys can collide once replaced). Depth and collection sizes
are checked on every top-level field, iteratively: no body can exhaust the stack.

A packet's problems are `packet_too_large`, `packet_too_deep` and `invalid_packet`; a small
body's are `body_too_large` and `invalid_request`. Bodies are read after authentication, so a
caller without the right token learns nothing from the body's validation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from gateway.engine.models import Packet
from gateway.http.problems import Problem
from gateway.pipeline.errors import shown
from gateway.runtime.runtime import PacketLimits

M = TypeVar("M", bound=BaseModel)

#: A string of JSON text can hold a surrogate only through an escape `\uD800`..`\uDFFF`.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class BodyRules:
    """What a body may be, and the problem code for each way it fails."""

    what: str  # "packet", or the name of the body's model, for messages
    max_bytes: int
    max_depth: int
    max_items: int
    too_large: str
    too_deep: str
    invalid: str


#: The approve, reject and kill switch bodies: a few short fields.
SMALL_BODY = BodyRules("body", max_bytes=16_384, max_depth=16, max_items=1_000,
                       too_large="body_too_large", too_deep="invalid_request", invalid="invalid_request")


def packet_rules(limits: PacketLimits) -> BodyRules:
    return BodyRules("packet", max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                     max_items=limits.max_items, too_large="packet_too_large",
                     too_deep="packet_too_deep", invalid="invalid_packet")


async def read_packet(request: Request, limits: PacketLimits) -> Packet:
    rules = packet_rules(limits)
    raw = await read_json(request, rules)
    if raw is None:
        raise Problem("malformed_json", "the body is empty; send the packet as JSON")
    return validate(Packet, raw, rules, "the packet does not match the schema")


async def read_model(request: Request, model: type[M], *, required: bool) -> M | None:
    """A small JSON body as `model`; None when the body is empty and not `required`."""
    raw = await read_json(request, SMALL_BODY)
    if raw is None:
        if required:
            raise Problem("invalid_request", f"send a JSON body ({model.__name__})")
        return None
    return validate(model, raw, SMALL_BODY, f"the body does not match {model.__name__}")


async def read_json(request: Request, rules: BodyRules) -> dict[str, Any] | None:
    """The body as a JSON object after every check but the schema's; None when it is empty."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > rules.max_bytes:
        raise Problem(rules.too_large, f"the {rules.what} is {declared} bytes; the limit is {rules.max_bytes}")
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem("unsupported_media_type", f"send the {rules.what} as application/json, not {shown(media)}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > rules.max_bytes:
            raise Problem(rules.too_large, f"the {rules.what} is over the limit of {rules.max_bytes} bytes")
    if not body.strip():
        return None
    value = parse(bytes(body), rules)
    if not isinstance(value, dict):
        raise Problem(rules.invalid, f"the {rules.what} must be a JSON object")
    for field, child in value.items():
        over = depth_and_items(child, rules.max_depth, rules.max_items)
        if over is not None:
            deep = over.startswith("nested")
            raise Problem(rules.too_deep if deep else rules.too_large, f"{shown(field)}: {over}")
    return value


class DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook`: an object, unless it names a key twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def parse(body: bytes, rules: BodyRules) -> Any:
    """I-JSON text (RFC 7493) → a value: UTF-8 (a leading BOM is ignored), valid JSON, unique
    keys, no lone surrogates."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Problem("malformed_json", f"the body is not UTF-8: byte {exc.start} is invalid") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique)
    except DuplicateKey as dup:
        key = shown(dup.key) if not _has_lone_surrogate(dup.key) else "a key"
        raise Problem("duplicate_key", f"an object names {key} twice; each key must appear once "
                      "(I-JSON, RFC 7493)") from None
    except RecursionError:
        raise Problem(rules.too_deep, f"the {rules.what} is nested too deeply to read") from None
    except ValueError as exc:
        raise Problem("malformed_json", f"the body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and (where := lone_surrogate(value)) is not None:
        raise Problem("invalid_unicode", f"{where} holds a lone surrogate escape (\\ud800-\\udfff), "
                      "which is not Unicode text (I-JSON, RFC 7493)")
    return value


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate(value: Any) -> str | None:
    """Where in `value` a string or key holds a lone surrogate ("a key", "a string"); None when
    every one is Unicode text. Only called when the JSON text has a surrogate escape at all."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                return "a string"
        elif isinstance(item, dict):
            for key, child in item.items():
                if _has_lone_surrogate(key):
                    return "a key"
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return None


def depth_and_items(value: Any, max_depth: int, max_items: int) -> str | None:
    """Iteratively check nesting depth and collection sizes; a message when over a limit."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            if len(item) > max_items:
                return f"a collection has {len(item)} items; the limit is {max_items}"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return None


def validate(model: type[M], raw: dict[str, Any], rules: BodyRules, detail: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])[:64]
        said = f"{where}: {first['msg']}" if where else first["msg"]
        raise Problem(rules.invalid, f"{detail} ({said})", errors=errors) from None
