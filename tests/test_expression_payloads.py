"""Every known sandbox escape and resource payload (tests/expression_payloads.py) fails with a plain message, changes
nothing, and stops at its budget rather than running on (each test has a hang guard; the times are in
bench/expressions.py). Plus: a value from the data is never rendered as a template again."""

from __future__ import annotations

import copy

import pytest

from flowboard import expressions
from flowboard.engine import Engine, RunStatus, StepStatus
from flowboard.errors import ExpressionError
from flowboard.expressions import compile_string, evaluate
from flowboard.frozen import freeze

from .conftest import make_flow
from .expression_payloads import ESCAPES, RESOURCES

ITEM = {"email": "ada@example.com", "days": 12, "tags": ["a", "b"], "items": "key"}
SCOPE = {"item": freeze(ITEM), "items": freeze([ITEM, {"n": 2}]), "nodes": {}, "input": freeze([]),
         "run": {"id": "r"}}
INTERNALS = ("class", "function", "module", "method", "uid=", "root:", "<built-in", "Macro", "environ")


def test_the_corpus_is_large_enough() -> None:
    assert len(ESCAPES) >= 30 and len(RESOURCES) >= 30
    assert len(set(ESCAPES)) == len(ESCAPES) and len(set(RESOURCES)) == len(RESOURCES)


def _refusal(payload: str) -> str:
    with pytest.raises(ExpressionError) as caught:
        evaluate(compile_string(payload), copy.copy(SCOPE))
    message = caught.value.message
    assert message and "Traceback" not in message
    return message


@pytest.mark.timeout(20)
@pytest.mark.parametrize("payload", ESCAPES)
def test_escape_payloads_are_refused_with_a_message(payload: str) -> None:
    message = _refusal(payload)
    assert not any(word in message for word in ("uid=", "root:", "0x7f")), message
    assert SCOPE["item"] == ITEM, "an expression changed the item"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("payload", RESOURCES)
def test_resource_payloads_stop_at_their_budget_with_a_message(payload: str) -> None:
    message = _refusal(payload)
    assert any(word in message for word in ("1 MB", "10 MB", "too much work", "digits", "not available",
                                            "not allowed", "cannot be called", "levels deep", "at most")), message


@pytest.mark.parametrize(("text", "expected"), [
    ("{% for x in items %}{{ x.n }},{% endfor %}", ",2,"),
    ("{% for i in range(5000) %}{% endfor %}done", "done"),
    ("{{ item.email.upper().split('@') }}", ["ADA", "EXAMPLE.COM"]),
    ("{{ ('x' * 999000) | length }}", 999000),
    ("{{ ['a', 'b'] | join(', ') }}", "a, b"),
    ("{{ ([[1, 2]] * 3) | sum(start=[]) }}", [1, 2, 1, 2, 1, 2]),
    ("{{ 'ab'.center(6, '-') }}", "--ab--"),
    ("{{ '%05.1f' % 3.14159 }}", "003.1"),
    ("{{ 2 ** 64 }}", 2**64),
    ("{{ item.tags + ['c'] }}", ["a", "b", "c"]),
    ("{{ item._id }}", None),
])
def test_ordinary_expressions_stay_within_budget(text: str, expected: object) -> None:
    assert evaluate(compile_string(text), SCOPE) == expected


def test_a_budget_is_per_evaluation_not_per_process() -> None:
    """Many evaluations that each stay under the limits all succeed: nothing adds up across items."""
    fn = compile_string("{% for i in range(9000) %}{% endfor %}{{ ('x' * 900000) | length }}")
    for _ in range(30):
        assert evaluate(fn, SCOPE) == "900000"
    assert expressions._BUDGET.get() is expressions._OUTSIDE


DATA_TEMPLATES = ["{{ 7 * 7 }}", "{{ item.__class__ }}", "{% for i in range(10**9) %}x{% endfor %}",
                  "{{ nodes['Look up'].items }}", "{% raw %}{{ x }}{% endraw %}", "{#", "{{"]


@pytest.mark.parametrize("text", DATA_TEMPLATES)
async def test_data_is_never_rendered_as_a_template_again(text: str, plan_of, engine: Engine) -> None:
    """A value from an item that looks like a template stays text, through an expression, a mixed text and a chain
    of nodes (each of which evaluates its own config, never the data)."""
    nodes = [{"id": "t", "type": "trigger.manual"},
             {"id": "a", "type": "test.add", "config": {"field": "copy", "value": "{{ item.text }}"}},
             {"id": "b", "type": "test.add", "config": {"field": "mixed", "value": "Hi {{ item.copy }}!"}},
             {"id": "c", "type": "data.set", "config": {"fields": [{"name": "again", "value": "{{ item.mixed }}"}]}}]
    plan = plan_of(make_flow(nodes, [("t", "a"), ("a", "b"), ("b", "c")]))
    result = await engine.run(plan, [{"text": text}])
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == [{"text": text, "copy": text, "mixed": f"Hi {text}!", "again": f"Hi {text}!"}]


async def test_a_runaway_expression_fails_its_step_with_the_message(plan_of, engine: Engine) -> None:
    nodes = [{"id": "t", "type": "trigger.manual"},
             {"id": "a", "type": "test.add", "config": {"field": "x", "value": "{{ 'x' * 10**9 }}"}}]
    result = await engine.run(plan_of(make_flow(nodes, [("t", "a")])), [{"n": 1}])
    assert result.status is RunStatus.failed
    step = result.steps["a"]
    assert step.status is StepStatus.failed and step.attempt == 1  # the same data fails the same way: no retry
    assert "more than 1 MB" in step.error["message"]


async def test_the_editor_preview_uses_the_same_bounded_evaluator(plan_of, registry, engine: Engine) -> None:
    """The inspector previews an expression on the last run's items with RunView.scope + evaluate, as here."""
    from flowboard.model import parse_flow
    from flowboard.ui.run_data import RunView

    data = make_flow([{"id": "t", "type": "trigger.manual"}, {"id": "a", "type": "test.add"}], [("t", "a")])
    result = await engine.run(plan_of(data), [dict(ITEM)])
    scope = RunView.from_result(result, [ITEM], "t").scope(parse_flow(data), registry, "a")
    assert evaluate(compile_string("{{ item.email }}"), scope) == ITEM["email"]
    for payload in RESOURCES[:10] + ESCAPES[:10]:
        with pytest.raises(ExpressionError):
            evaluate(compile_string(payload), scope)
