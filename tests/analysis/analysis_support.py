"""Policy sets with known answers, random packets from the catalog's schemas, and the engine's
own check of every packet the analysis shows.

`random_examples(analysis, rng, n)` draws packets for every tool the analysis knows: params
within the schema (biased to the policies' own constants and their neighbours, ints sent as
whole doubles now and then, optional fields left out), evidence and context at every path the
policies read (absent, of another kind, or of the kind they use), and an autonomy level.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dsl import compile_policy_dir, compile_sources
from dsl.model import Autonomy, PolicySet
from gateway.analysis.assertions import analysis_for, load
from gateway.analysis.cel_ast import Lit, Node, parse
from gateway.analysis.model import Example, rule_nodes
from gateway.analysis.questions import Analysis, Witness
from gateway.analysis.report import Report, run
from gateway.analysis.schema import Field, sample_string, sample_strings, valid_params
from gateway.config import SHIPPED_POLICY_DIR
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated
from gateway.engine.models import Decision, Packet

NOW_AGENT = "analysis-agent"


def shipped_report() -> Report:
    policy_set = compile_policy_dir(SHIPPED_POLICY_DIR)
    return run(SHIPPED_POLICY_DIR, policy_set, load(SHIPPED_POLICY_DIR / "assertions.toml"))


def policies(text: str) -> PolicySet:
    return compile_sources({"test.policy": text})


def decide(policy_set: PolicySet, example: Example) -> Decision:
    """The engine's decision for `example`, decided afresh (not the analysis's copy)."""
    from gateway.analysis.search import NOW

    agent = Agent(name=NOW_AGENT, autonomy=example.autonomy)
    answers = {path: Delegated.of(answer) for path, answer in example.opa.items()}
    return Decider(policy_set).decide(Packet.model_validate(example.packet), agent, now=NOW, delegated=answers)


def check_witness(policy_set: PolicySet, witness: Witness) -> Decision:
    """The witness's packet is valid for its tool and the engine decides it as claimed."""
    from gateway.analysis.schema import schemas

    schema = schemas([witness.example.tool])[witness.example.tool]
    assert valid_params(schema, witness.example.packet["action"]["params"]) is None
    decision = decide(policy_set, witness.example)
    assert decision.status == witness.decision.status
    assert decision.risk == witness.decision.risk
    assert decision.reasons == witness.decision.reasons
    return decision


def witnesses(report: Report) -> Iterator[Witness]:
    for answer in report.answers:
        for finding in answer.findings:
            yield from finding.witnesses
    for result in report.assertions or ():
        yield from result.witnesses


# ------------------------------------------------------------------------------ random packets


def _literals(nodes: list[Node]) -> tuple[list[float], list[str]]:
    numbers: list[float] = []
    strings: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Lit):
            if isinstance(node.value, str):
                strings.append(node.value)
            elif not isinstance(node.value, bool):
                numbers.append(node.value)
            return
        for child in getattr(node, "args", ()) or ():
            walk(child)
        for name in ("items", ):
            for child in getattr(node, name, ()):
                walk(child)
        for name in ("test", "then", "other", "target"):
            child = getattr(node, name, None)
            if child is not None:
                walk(child)

    for node in nodes:
        walk(node)
    return numbers, strings


def _number(rng: random.Random, field: Field, near: list[float], whole: bool) -> int | float:
    low = field.bounds[0] if field.bounds[0] is not None else -10**9
    high = field.bounds[1] if field.bounds[1] is not None else 10**9
    picks = [low, high, rng.uniform(low, min(high, low + 10**6))]
    picks += [n + d for n in near for d in (-1, 0, 1, -0.5, 0.5)]
    value = rng.choice(picks)
    value = min(max(value, low), high)
    if whole:
        value = round(value)
        return float(value) if rng.random() < 0.1 else int(value)
    return float(value) if rng.random() < 0.7 else int(round(value))


def _params(rng: random.Random, fields: Mapping[str, Field], numbers: list[float],
            strings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in fields.items():
        if not field.required and rng.random() < 0.3:
            continue
        if field.kind in ("int", "number"):
            out[name] = _number(rng, field, numbers, field.kind == "int")
        elif field.kind == "string":
            out[name] = rng.choice(field.enum or [*sample_strings(field), *strings])
        elif field.kind == "bool":
            out[name] = rng.random() < 0.5
        elif field.kind == "list":
            high = field.lengths[1] or 200
            size = rng.choice([max(1, field.lengths[0] or 0), 1, 100, 101, rng.randint(1, high)])
            out[name] = [sample_string(field, i) for i in range(min(size, high))]
        else:
            out[name] = {}
    return out


def _json(rng: random.Random, kind: str | None, numbers: list[float], strings: list[str]) -> Any:
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(["x", True, 0, None, [], 1.5])  # another kind, often
    if kind == "num":
        value = rng.choice([*numbers, 0, 1, -1, 1e6]) + rng.choice([0, 0, -1, 1, -0.01, 0.01])
        whole = float(value).is_integer() and abs(value) < 2**63 and rng.random() < 0.5
        return int(value) if whole else float(value)
    if kind == "string":
        return rng.choice([*strings, "other", ""])
    if kind == "bool":
        return rng.random() < 0.7
    if kind == "map":
        return {}
    return rng.choice([True, {"of": "dec_1"}, "x"])


def random_examples(analysis: Analysis, rng: random.Random, count: int) -> Iterator[Example]:
    """`count` packets over the analysis's covered tools, round-robin."""
    tools = [t for t in analysis.tools if analysis.schemas[t].fields is not None]
    plans = {}
    for tool in tools:
        model = analysis.model(tool)
        nodes = rule_nodes(analysis.policy_set.policies_for(tool))
        nodes += [parse(s) for s in analysis.extra_for(tool)]
        numbers, strings = _literals(nodes)
        paths = sorted(k for k in model.env.present if not k.startswith("params."))
        kinds = {k: next(iter(v)) if len(v) == 1 else None for k, v in analysis.kinds(tool).items()}
        plans[tool] = (analysis.schemas[tool].fields or {}, numbers, strings, paths, kinds)
    made = 0
    while made < count:
        tool = tools[made % len(tools)]
        fields, numbers, strings, paths, kinds = plans[tool]
        params = _params(rng, fields, numbers, strings)
        if valid_params(analysis.schemas[tool], params) is not None:
            continue
        roots: dict[str, dict[str, Any]] = {"evidence": {}, "context": {}}
        for path in sorted(paths, key=lambda p: p.count(".")):
            root, *names = path.split(".")
            if rng.random() < 0.1:
                continue
            parent: Any = roots[root]
            for name in names[:-1]:
                parent = parent.get(name) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent[names[-1]] = _json(rng, kinds.get(path), numbers, strings)
        packet = {"packet_id": f"random-{made}", "agent": NOW_AGENT,
                  "action": {"tool": tool, "params": params}, **roots}
        made += 1
        yield Example(tool, Autonomy(rng.randrange(5)), packet)


def analysis_of(policy_set: PolicySet, assertions_file: Path | None = None) -> Analysis:
    return analysis_for(policy_set, load(assertions_file) if assertions_file else [])
