"""What the analysis knows about a packet before any policy reads it: the catalog's params.

Each tool's params model (`connectors.base.ToolSpec.params`) is read through its JSON Schema
into `Field`s: the kind (`int`, `number`, `string`, `bool`, `list`, `object`), the range
(`minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`), an `enum`, and whether
it is required (an optional field is absent or present; absent is what the engine sees for
`None`, since the pipeline validates and policies read the fields that were sent).

A tool no catalog entry describes (a name a policy gives, a connector of one's own) has no
schema: its params are read like evidence, their kinds inferred from how policies use them.
Patterns are not modelled; every packet the analysis builds is checked against the params
model before it is shown (`valid_params`), and sample strings that fit the patterns are chosen
for the fields no policy constrains (`sample_string`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.base import ToolSpec

#: Kinds of a params field, as the analysis models them.
KINDS = ("int", "number", "string", "bool", "list", "object")


@dataclass(frozen=True)
class Field:
    """One params field: its kind, whether it must be sent, and the bounds of its schema:
    `bounds` (minimum, maximum), `lengths` (of a string, or a list's items), the field's own
    `pattern` and its items' (`item_pattern`), an `enum` of strings."""

    required: bool
    name: str
    kind: str
    bounds: tuple[float | None, float | None] = (None, None)
    lengths: tuple[int | None, int | None] = (None, None)
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    item_pattern: str | None = None


@dataclass(frozen=True)
class ToolSchema:
    """One tool's params (None: no catalog entry, the params are untyped) and its model."""

    name: str
    fields: Mapping[str, Field] | None
    model: type[BaseModel] | None = None

    @property
    def known(self) -> bool:
        return self.fields is not None


def catalog() -> tuple[ToolSpec, ...]:
    """Every tool of the shipped catalog (sandbox and live: the live-only ones included)."""
    from connectors.registry import CATALOG

    return CATALOG


def schemas(tools: Iterable[str], specs: Iterable[ToolSpec] | None = None) -> dict[str, ToolSchema]:
    """The schema of each tool name: the catalog's when it has one, else untyped."""
    by_name = {spec.name: spec for spec in (catalog() if specs is None else specs)}
    out: dict[str, ToolSchema] = {}
    for tool in tools:
        spec = by_name.get(tool)
        if spec is None:
            out[tool] = ToolSchema(tool, None)
        else:
            out[tool] = ToolSchema(tool, fields_of(spec.params), spec.params)
    return out


def fields_of(model: type[BaseModel]) -> dict[str, Field]:
    """The fields of a params model, from its JSON Schema."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return {name: _field(name, prop, name in required)
            for name, prop in schema.get("properties", {}).items()}


def _field(name: str, prop: Mapping[str, Any], required: bool) -> Field:
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    if len(options) != 1:
        return Field(required, name, "object")  # a union the analysis does not model
    option = options[0]
    kind = {"integer": "int", "number": "number", "string": "string", "boolean": "bool",
            "array": "list", "object": "object"}.get(option.get("type", ""), "object")
    items = option.get("items", {})
    return Field(
        required, name, kind,
        bounds=(option.get("minimum"), option.get("maximum")),
        lengths=(option.get("minLength", option.get("minItems")),
                 option.get("maxLength", option.get("maxItems"))),
        enum=tuple(option.get("enum", ())),
        pattern=option.get("pattern"),
        item_pattern=items.get("pattern") if isinstance(items, dict) else None,
    )


#: Strings tried, in order, for a field no policy constrains; the first that fits is used.
_SAMPLES = ("usd", "ch_1", "acct_1", "tr_1", "ba_1", "py_1", "x1", "c_1",
            "ada@example.com", "2030-01-01T00:00:00Z", "sample text")


def sample_strings(field: Field, index: int = 0) -> list[str]:
    """Strings that fit `field` (pattern and length); `index` varies them (list items)."""
    pattern = field.pattern if field.kind == "string" else field.item_pattern
    low = field.lengths[0] if field.kind == "string" else None
    high = field.lengths[1] if field.kind == "string" else None
    fitting = []
    for sample in (f"{field.name}_1", *_SAMPLES):
        candidate = f"{sample}{index}" if index and not sample.endswith("Z") else sample
        if pattern is not None and re.search(pattern, candidate) is None:
            continue
        if (low is None or len(candidate) >= low) and (high is None or len(candidate) <= high):
            fitting.append(candidate)
    return fitting or ["x" * max(1, field.lengths[0] or 1)]


def sample_string(field: Field, index: int = 0) -> str:
    """The first string that fits `field`; `index` varies it (list items)."""
    return sample_strings(field, index)[0]


def valid_params(schema: ToolSchema, params: Mapping[str, Any]) -> str | None:
    """None when the catalog's model takes `params`; else its first complaint."""
    if schema.model is None:
        return None
    try:
        schema.model.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        return f"{where}: {first['msg']}"
    return None
