"""Regular expressions in conditions run on RE2: patterns that make backtracking engines run for hours finish at
once, and patterns that need backtracking are refused with a message at their place."""

from __future__ import annotations

import pytest

from flowboard.engine import Engine, RunStatus, StepStatus
from flowboard.errors import FlowInvalid
from flowboard.sdk import compile_regex

from .conftest import make_flow

EVIL = [  # (pattern, a text that makes a backtracking engine take exponential time)
    (r"(a+)+$", "a" * 40 + "!"),
    (r"(a|a)*b", "a" * 40),
    (r"(a|aa)+$", "a" * 40 + "!"),
    (r"^(\w+\s?)*$", "word " * 12 + "!"),
    (r"(x+x+)+y", "x" * 40),
    (r"(.*a){20}", "a" * 19 + "b" * 20),
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", "aaaaaaaaaaaaaaaaaaaaaaaa!"),
    (r"(\d+)*[a-z]", "1" * 40),
]
UNSUPPORTED = [(r"(a)\1", "back-reference"), (r"(?P<x>a)(?P=x)", "back-reference"), (r"a(?=b)", "look-ahead"),
               (r"a(?!b)", "look-ahead"), (r"(?<=a)b", "look-ahead"), (r"(?<!a)b", "look-ahead"),
               (r"(unclosed", "not a valid regular expression"), (r"a{2,1}", "not a valid regular expression")]


def if_flow(value: object) -> dict:
    return make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "if", "type": "logic.if", "config": {"conditions": [
                          {"field": "text", "op": "matches", "value": value}]}}], [("t", "if")])


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("pattern", "text"), EVIL)
async def test_catastrophic_patterns_finish_at_once(pattern: str, text: str, plan_of, engine: Engine) -> None:
    result = await engine.run(plan_of(if_flow(pattern)), [{"text": text}])
    assert result.status is RunStatus.succeeded, result.error
    assert result.steps["if"].outputs == {"true": [], "false": [{"text": text}]}  # the same answer as Python's re


@pytest.mark.parametrize(("pattern", "words"), UNSUPPORTED)
def test_unsupported_patterns_are_refused_where_they_are_written(pattern: str, words: str, plan_of) -> None:
    with pytest.raises(FlowInvalid) as caught:
        plan_of(if_flow(pattern))
    [problem] = caught.value.problems
    assert problem.loc == "nodes[1].config.conditions[0].value"
    assert words in problem.message


async def test_a_pattern_from_an_expression_is_checked_per_item(plan_of, engine: Engine) -> None:
    result = await engine.run(plan_of(if_flow("{{ item.pattern }}")),
                              [{"text": "abc", "pattern": "b+"}, {"text": "abc", "pattern": r"(a)\1"}])
    assert result.status is RunStatus.failed
    step = result.steps["if"]
    assert step.status is StepStatus.failed
    assert "back-reference" in step.error["message"]


def test_case_and_python_style_syntax() -> None:
    assert compile_regex(r"^inv-\d{4}$", True).search("INV-2024")
    assert not compile_regex(r"^inv-\d{4}$").search("INV-2024")
    assert compile_regex(r"(?P<year>\d{4})-(?P<month>\d\d)").search("on 2024-05").group("month") == "05"
    assert compile_regex("ü+").search("grüüß")
