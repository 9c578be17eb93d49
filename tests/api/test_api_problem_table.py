"""The pipeline's errors and the HTTP problems they become: one table, complete, and the tree
drawn in `gateway.pipeline.errors` is the tree in the code."""

from __future__ import annotations

import pytest

from gateway.http.problems import CODES, DOMAIN_PROBLEMS, problem_of
from gateway.pipeline import errors
from gateway.pipeline.errors import PipelineError, shown


def every_error() -> list[type[PipelineError]]:
    """Every error class `gateway.pipeline.errors` defines."""
    found: list[type[PipelineError]] = []
    stack = [PipelineError]
    while stack:
        cls = stack.pop()
        if cls.__module__ == errors.__name__:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def leaves() -> list[type[PipelineError]]:
    defined = every_error()
    return [cls for cls in defined if not any(sub in defined for sub in cls.__subclasses__())]


def test_every_error_the_pipeline_raises_has_a_problem_code() -> None:
    for cls in leaves():
        assert cls in DOMAIN_PROBLEMS, cls.__name__
        assert DOMAIN_PROBLEMS[cls] in CODES, cls.__name__
    assert set(DOMAIN_PROBLEMS) <= set(every_error())


@pytest.mark.parametrize("cls", leaves(), ids=lambda cls: cls.__name__)
def test_a_pipeline_error_becomes_its_problem_with_message_and_payload(cls: type[PipelineError]) -> None:
    if cls in (errors.NotPending, errors.ApprovalExpired):
        error = cls("decision 'dec_1' is executed", {"status": "executed"})  # type: ignore[call-arg]
    elif cls is errors.InvalidParams:
        error = cls("the params do not match stripe.refund", [{"loc": ["amount"], "msg": "required"}])  # type: ignore[call-arg]
    else:
        error = cls("what happened")
    problem = problem_of(error)
    assert problem.code == DOMAIN_PROBLEMS[cls]
    assert problem.status == CODES[problem.code][0]
    assert problem.detail == error.message
    assert {k: v for k, v in problem.body().items() if k not in {"type", "title", "status", "detail", "code"}} \
        == error.payload()


def test_an_error_outside_the_table_is_not_answered_as_something_else() -> None:
    class Unmapped(PipelineError):
        code = "unmapped"

    with pytest.raises(LookupError, match="Unmapped"):
        problem_of(Unmapped("no row in the table"))


def test_the_tree_in_the_docstring_names_every_error_and_its_code() -> None:
    lines = (errors.__doc__ or "").splitlines()
    for cls in every_error():
        drawn = [line for line in lines if f" {cls.__name__} " in f" {line.strip('│├└─ ')} "]
        assert drawn, f"{cls.__name__} is not drawn in gateway.pipeline.errors"
        if cls not in leaves():
            continue
        assert f"{cls.code}:" in drawn[0], (cls.__name__, drawn[0])


def test_long_values_are_cut_when_echoed() -> None:
    assert shown("dec_1") == "'dec_1'"
    cut = shown("d" * 5000)
    assert len(cut) < 100 and cut.startswith("'" + "d" * 64 + "'") and "5000 characters" in cut
    assert shown("\ud800") == "'\\ud800'"  # a lone surrogate is escaped, never sent raw
